"""The InstructGPT recipe as a library: ingestion, models, losses, trainers, evaluation, the simulated world."""
