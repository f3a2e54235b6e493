"""Sweeps: a grid of protocol variants × genotypes × parameter draws, run to Parquet chunks and summarised."""
