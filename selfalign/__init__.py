"""selfalign: align language models with feedback they produce themselves."""
__version__ = "0.1.0"
