"""The notebook pattern most Fruits-360 Spark projects copy (Databricks' "featurization for transfer
learning"), written faithfully as the baseline for benchmarks/featurize.py:

binaryFile -> repartition(20) -> Scalar Iterator pandas_udf that rebuilds the model from broadcast weights
in every partition -> PIL resize -> model.predict per Arrow batch -> Parquet.

Usage: python benchmarks/notebook_baseline.py INPUT OUTPUT IMAGE_SIZE [S3_ENDPOINT]
"""

import io
import sys
from collections.abc import Iterator

import numpy as np
import pandas as pd
from PIL import Image
from pyspark.sql import SparkSession
from pyspark.sql.functions import col, pandas_udf


def main(input_path: str, output_path: str, size: int, endpoint: str | None) -> None:
    builder = SparkSession.builder.master("local[*]").appName("notebook-baseline")
    if endpoint:  # what the notebook's users put in spark-defaults.conf by hand
        from sparkyfruit.spark.jars import bundled_hadoop_version

        builder = (
            builder.config("spark.jars.packages", f"org.apache.hadoop:hadoop-aws:{bundled_hadoop_version()}")
            .config("spark.hadoop.fs.s3a.endpoint", endpoint)
            .config("spark.hadoop.fs.s3a.path.style.access", "true")
            .config("spark.hadoop.fs.s3a.connection.ssl.enabled", "false")
            .config("spark.hadoop.fs.s3a.endpoint.region", "us-east-1")
        )
    spark = builder.getOrCreate()
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "1024")
    sc = spark.sparkContext

    from tensorflow.keras.applications.mobilenet_v2 import MobileNetV2, preprocess_input
    from tensorflow.keras.preprocessing.image import img_to_array

    images = (
        spark.read.format("binaryFile")
        .option("pathGlobFilter", "*.jpg")
        .option("recursiveFileLookup", "true")
        .load(input_path)
    )
    model = MobileNetV2(weights=None, include_top=False, pooling="avg", input_shape=(size, size, 3))
    bc_model_weights = sc.broadcast(model.get_weights())

    def model_fn():
        model = MobileNetV2(weights=None, include_top=False, pooling="avg", input_shape=(size, size, 3))
        model.set_weights(bc_model_weights.value)
        return model

    def preprocess(content):
        img = Image.open(io.BytesIO(content)).resize([size, size])
        arr = img_to_array(img)
        return preprocess_input(arr)

    def featurize_series(model, content_series):
        input = np.stack(content_series.map(preprocess))
        preds = model.predict(input)
        output = [p.flatten() for p in preds]
        return pd.Series(output)

    @pandas_udf("array<float>")  # Scalar Iterator UDF (PandasUDFType.SCALAR_ITER in older notebooks)
    def featurize_udf(content_series_iter: Iterator[pd.Series]) -> Iterator[pd.Series]:
        model = model_fn()
        for content_series in content_series_iter:
            yield featurize_series(model, content_series)

    features_df = images.repartition(20).select(col("path"), featurize_udf("content").alias("features"))
    features_df.write.mode("overwrite").parquet(output_path)
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
