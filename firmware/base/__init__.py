"""Project-independent basics: errors, atomic writes, logging. Imports nothing of the project."""
