"""The Spark wing: sessions, their options and jars, the driver log, class archives, progress, --ship-env."""
