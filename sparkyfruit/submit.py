"""The file to give spark-submit: the same commands and options as the `sparkyfruit` script.

    spark-submit --master yarn --deploy-mode cluster [--packages ...] "$(python -m sparkyfruit.submit)" \\
        encode --input s3://bucket/Training --output s3://bucket/features

Run as a module with no arguments (`python -m sparkyfruit.submit`) it prints its own path, for that line.
"""

import sys

if __name__ == "__main__":
    if __spec__ is not None and len(sys.argv) == 1:  # python -m sparkyfruit.submit
        print(__spec__.origin)
    else:  # spark-submit runs this file as a script
        from sparkyfruit.cli import main

        main()
