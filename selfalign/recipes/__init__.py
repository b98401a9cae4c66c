"""Recipes: rounds of stages, each readable top to bottom."""
