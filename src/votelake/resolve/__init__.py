"""Identity resolution with Splink on Spark."""
