"""Small shared helpers (progress bars, hashing, seeding, atomic files)."""
