"""The command line: options -> settings -> one call of the core API -> rich output and an exit code.

Exit codes: 0 done, 1 the run failed (or OUTPUT is not a finished output), 2 bad usage or configuration.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperCommand

from sparkyfruit import __version__
from sparkyfruit.errors import ConfigError, InterruptedRun, SparkyfruitError


class _Command(TyperCommand):
    """Usage lines as users know them (`inspect OUTPUT`), not typer's `{OUTPUT}` for a required argument."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        return [
            piece[1:-1] if piece.startswith("{") and piece.endswith("}") else piece
            for piece in super().collect_usage_pieces(ctx)
        ]


app = typer.Typer(
    name="sparkyfruit",
    help="Turn images in S3 or a folder into CNN feature vectors (Parquet) with Apache Spark.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    # plain help: flags without a <bool> beside them, and "[default: ...]" shown as written
    rich_markup_mode=None,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

S3_PANEL = "S3"
# the S3 options of the commands that read outputs (inspect, reduce, evaluate): one definition, shared
S3_ENDPOINT_OPTION = typer.Option(None, help="S3-compatible endpoint URL.", rich_help_panel=S3_PANEL)
S3_REGION_OPTION = typer.Option(None, help="Bucket region.", rich_help_panel=S3_PANEL)
PROFILE_OPTION = typer.Option(None, help="AWS profile.", rich_help_panel=S3_PANEL)


def _version(value: bool) -> None:
    if value:
        from sparkyfruit.output_format import library_versions  # metadata only: no JVM, no TensorFlow import

        versions = library_versions()
        print(f"sparkyfruit {__version__}")
        print(", ".join(f"{name} {versions[name]}" for name in ("pyspark", "tensorflow", "keras", "python")))
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(
        None,
        "--version",
        callback=_version,
        is_eager=True,
        help="Print the versions of sparkyfruit, Spark, TensorFlow and Python, and exit.",
    ),
) -> None:
    """Turn images in S3 or a folder into CNN feature vectors (Parquet) with Apache Spark.

    Settings come from flags, then env SPARKYFRUIT_<NAME>, then a TOML file (--config), then defaults.
    """


def _fail(error: SparkyfruitError) -> None:
    text = escape(f"{error.message} {error.hint}" if error.hint else error.message)  # paths and globs hold [ ]
    err.print(text if isinstance(error, InterruptedRun) else f"[bold red]error:[/] {text}", soft_wrap=True)
    raise typer.Exit(error.exit_code)


ENCODE_EXAMPLE = (
    "sparkyfruit encode --input examples/images --output out/features --model mobilenet --alpha 0.25 "
    "--weights examples/models/mobilenet_2_5_224_tf_no_top.h5"
)


@app.command(
    cls=_Command, epilog=f"Example: {ENCODE_EXAMPLE} (offline, in the repository's folder, with the bundled weights)"
)
def encode(
    mode: Optional[str] = typer.Option(
        None,
        help="df: Spark reads the files (binaryFile over S3A); keys: driver "
        "lists keys, executors GET them. [default: df]",
    ),
    input: Optional[str] = typer.Option(
        None, "--input", "-i", help="A local folder, s3://bucket/prefix (or s3a://...), or hdfs://namenode/path."
    ),
    output: Optional[str] = typer.Option(
        None, "--output", "-o", help="A local folder, s3://bucket/prefix, or hdfs://namenode/path."
    ),
    config: Optional[Path] = typer.Option(
        None, "--config", help="TOML file with settings (same names as the flags, with '_' for '-')."
    ),
    model: Optional[str] = typer.Option(
        None,
        help="A keras.applications backbone by name (`sparkyfruit models` lists them: efficientnet_v2_b0, "
        "convnext_tiny, ...), or a saved model: path/to/model.keras, .h5 or s3://... [default: mobilenet_v2]",
    ),
    layer: Optional[str] = typer.Option(
        None, help="With a saved --model: the layer whose output is the vector. [default: its last layer]"
    ),
    pooling: Optional[str] = typer.Option(
        None, help="avg or max: how a feature map becomes one vector. [default: avg]"
    ),
    preprocess: Optional[str] = typer.Option(
        None,
        help="With a saved --model: the backbone whose preprocess_input applies (e.g. mobilenet_v2), or none. "
        "[default: none]",
    ),
    alpha: Optional[float] = typer.Option(None, help="Width multiplier of the mobilenet family. [default: 1.0]"),
    image_size: Optional[int] = typer.Option(
        None, help="Resize images to this square size. [default: the network's own, e.g. 224]"
    ),
    weights: Optional[str] = typer.Option(
        None,
        help="imagenet (Keras download), a local .h5/.keras file, an s3:// "
        "object, or none (random, tests only). [default: imagenet]",
    ),
    master: Optional[str] = typer.Option(
        None, help="Spark master: local[*], local[N], spark://host:port, yarn. [default: local[*]]"
    ),
    ship_env: Optional[bool] = typer.Option(
        None,
        "--ship-env/--no-ship-env",
        help="On a cluster: pack this virtualenv (cached) and run the executors' Python from it. [default: off]",
    ),
    batch_size: Optional[int] = typer.Option(None, help="Images per batch (and per TensorFlow call). [default: 64]"),
    engine: Optional[str] = typer.Option(
        None,
        help="What runs the network: auto (LiteRT/XNNPACK where it gives TensorFlow's vectors, else "
        "TensorFlow), tensorflow, or litert. [default: auto]",
    ),
    limit: Optional[int] = typer.Option(None, help="Encode only the first N images in path order."),
    pattern: Optional[str] = typer.Option(
        None, help="Glob on file names, e.g. '*.jpg' or '*_100.{jpg,png}'. [default: jpg/jpeg/png, any case]"
    ),
    overwrite: Optional[bool] = typer.Option(
        None, "--overwrite/--no-overwrite", help="Replace an output that has content. [default: refuse]"
    ),
    resume: Optional[bool] = typer.Option(
        None,
        "--resume/--no-resume",
        help="Continue an --output whose run stopped (only uncommitted shards are redone), or add "
        "the images a finished one lacks (same model). [default: off]",
    ),
    retry_failed: Optional[bool] = typer.Option(
        None,
        "--retry-failed/--no-retry-failed",
        help="With --resume: encode the images whose rows failed again; the new rows replace them. [default: off]",
    ),
    max_failed: Optional[float] = typer.Option(
        None,
        help="Exit 1 when more than this share (0 to 1) of the images failed. [default: only when none succeeded]",
    ),
    quiet: Optional[bool] = typer.Option(None, "--quiet/--no-quiet", "-q", help="Errors only."),
    s3_endpoint: Optional[str] = typer.Option(
        None, help="S3-compatible endpoint URL, e.g. http://127.0.0.1:9000. [default: AWS]", rich_help_panel=S3_PANEL
    ),
    s3_region: Optional[str] = typer.Option(None, help="Bucket region.", rich_help_panel=S3_PANEL),
    profile: Optional[str] = typer.Option(
        None, help="AWS profile; otherwise the standard credential chain.", rich_help_panel=S3_PANEL
    ),
    spark_s3_scheme: Optional[str] = typer.Option(
        None,
        help="How Spark reaches S3: s3a (Hadoop S3A) or s3 (EMRFS, on AWS EMR). [default: s3a]",
        rich_help_panel=S3_PANEL,
    ),
) -> None:
    """Encode every image under --input into feature vectors in --output (Parquet + _sparkyfruit.json)."""
    from sparkyfruit.config import RunConfig

    try:
        settings = RunConfig.load(
            config,
            mode=mode,
            input=input,
            output=output,
            model=model,
            layer=layer,
            pooling=pooling,
            preprocess=preprocess,
            alpha=alpha,
            image_size=image_size,
            weights=weights,
            master=master,
            ship_env=ship_env,
            batch_size=batch_size,
            engine=engine,
            limit=limit,
            pattern=pattern,
            overwrite=overwrite,
            resume=resume,
            retry_failed=retry_failed,
            max_failed=max_failed,
            quiet=quiet,
            s3_endpoint=s3_endpoint,
            s3_region=s3_region,
            profile=profile,
            spark_s3_scheme=spark_s3_scheme,
        )
        if settings.weights == "none" and not settings.quiet:
            err.print(
                "[yellow]warning:[/] --weights none uses a random network: the vectors carry no meaning "
                "(for tests only)."
            )
        from sparkyfruit.pipeline import encode as run_encode

        result = run_encode(settings, console=err)
    except SparkyfruitError as error:
        _fail(error)
    failure = result.failure(settings.max_failed)
    if failure is not None:  # the output is kept: inspect shows every row's error
        _fail(failure)
    if not settings.quiet and result.added is not None:
        out.print(
            f"[bold green]resumed:[/] added {result.added} images; the output now has {result.rows} "
            f"({result.ok} ok, {result.failed} failed) -> {escape(result.output)}",
            soft_wrap=True,
        )
    elif not settings.quiet:
        # both rates: the whole run's (start-up included) and the encoding's, which the progress bar showed
        out.print(
            f"[bold green]done:[/] {result.rows} images, {result.ok} ok, {result.failed} failed, "
            f"{result.duration_seconds:.1f} s"
            + (f" (plan predicted {result.predicted_seconds:.1f} s)" if result.predicted_seconds is not None else "")
            + f", {result.images_per_second:.1f} images/s overall, "
            f"{result.encoding_images_per_second:.1f} images/s encoding ({result.encoding_seconds:.1f} s) -> "
            f"{escape(result.output)}",
            soft_wrap=True,
        )
    if result.failed and not settings.quiet:
        out.print(f"see the failures with: sparkyfruit inspect {escape(result.output)}", soft_wrap=True)


@app.command(cls=_Command, epilog="Example: sparkyfruit inspect s3://my-bucket/features --json")
def inspect(
    output: str = typer.Argument(..., help="The --output of an encode run: a local folder or s3://bucket/prefix."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    plot: Optional[Path] = typer.Option(
        None, "--plot", help="Also write a figure (PNG): the vectors' 2-D PCA by label, and images per label."
    ),
    s3_endpoint: Optional[str] = S3_ENDPOINT_OPTION,
    s3_region: Optional[str] = S3_REGION_OPTION,
    profile: Optional[str] = PROFILE_OPTION,
) -> None:
    """Show what an output holds (rows, failures, labels, model) without starting Spark."""
    from sparkyfruit.inspection import inspect as run_inspect

    try:
        s3 = _s3_settings(s3_endpoint, s3_region, profile)
        summary = run_inspect(output, s3=s3)
        if plot is not None:
            from sparkyfruit.plot import plot_output

            written = plot_output(output, plot, s3, summary)
    except SparkyfruitError as error:
        if as_json and getattr(error, "state", None):  # an unfinished output: its state on stdout, still exit 1
            print(json.dumps(error.state))
        _fail(error)
    if plot is not None and not as_json:
        err.print(f"figure: {written}")
    if as_json:
        data = {"finished": True, **summary.to_dict()}
        data.pop("manifest")
        print(json.dumps(data))
        return
    _print_summary(summary)


def _or_fail(action, *args, **kwargs):
    """Call one function of the core; a SparkyfruitError becomes its one line and exit code."""
    try:
        return action(*args, **kwargs)
    except SparkyfruitError as error:
        _fail(error)


def _s3_settings(s3_endpoint, s3_region, profile):
    from pydantic import ValidationError

    from sparkyfruit.config import S3Settings, config_error_from

    flags = {"s3_endpoint": s3_endpoint, "s3_region": s3_region, "profile": profile}
    try:
        return S3Settings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        raise config_error_from(exc) from None


@app.command(
    cls=_Command,
    epilog="Example: sparkyfruit reduce s3://my-bucket/features --output s3://my-bucket/features-pca --variance 0.95",
)
def reduce(
    source: str = typer.Argument(..., metavar="OUTPUT", help="A finished encode output (local or s3://)."),
    output: str = typer.Option(..., "--output", "-o", help="Where the reduced Parquet, manifest and PCA model go."),
    k: Optional[int] = typer.Option(None, "--k", help="Number of principal components."),
    variance: Optional[float] = typer.Option(
        None, "--variance", help="Keep as many components as this share of the variance needs, e.g. 0.95."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an --output that has content."),
    s3_endpoint: Optional[str] = S3_ENDPOINT_OPTION,
    s3_region: Optional[str] = S3_REGION_OPTION,
    profile: Optional[str] = PROFILE_OPTION,
) -> None:
    """PCA (Spark ML) on the features column: fitted once, applied to every row (failed rows kept, null)."""
    from sparkyfruit.reduce import reduce as run_reduce

    s3 = _or_fail(_s3_settings, s3_endpoint, s3_region, profile)
    result = _or_fail(run_reduce, source, output, s3, k=k, variance=variance, overwrite=overwrite)
    out.print(
        f"[bold green]done:[/] {result.rows} rows, {result.dim_in}-d -> {result.k}-d keeping "
        f"{result.explained_variance:.1%} of the variance, {result.duration_seconds:.1f} s -> {escape(result.output)}",
        soft_wrap=True,
    )


@app.command(cls=_Command, epilog="Example: sparkyfruit evaluate s3://my-bucket/features --test-fraction 0.2 --json")
def evaluate(
    output: str = typer.Argument(..., help="An encode or reduce output (local or s3://)."),
    test_fraction: float = typer.Option(0.5, help="Share of each label held out for testing."),
    seed: int = typer.Option(0, help="Seed of the stratified split."),
    method: str = typer.Option(
        "centroid",
        help="centroid (nearest class mean, in this process, no JVM) or logistic (Spark ML's logistic regression: "
        "starts Spark, tens of seconds).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    s3_endpoint: Optional[str] = S3_ENDPOINT_OPTION,
    s3_region: Optional[str] = S3_REGION_OPTION,
    profile: Optional[str] = PROFILE_OPTION,
) -> None:
    """A linear probe on the vectors: accuracy, per-label precision/recall, and the confusions."""
    from sparkyfruit.evaluate import evaluate as run_evaluate

    s3 = _or_fail(_s3_settings, s3_endpoint, s3_region, profile)
    report = _or_fail(
        run_evaluate, output, s3, test_fraction=test_fraction, seed=seed, method=method, announce=err.print
    )
    if as_json:
        print(json.dumps(report.to_json()))
        return
    out.print(
        f"[bold]{escape(report.output)}[/] ({report.column}, {report.method}): accuracy "
        f"[bold]{report.accuracy:.3f}[/] on {report.test} held-out images ({report.train} to train)"
        + (f"; a sample of the output's {report.sampled_from:,} vectors" if report.sampled_from else ""),
        soft_wrap=True,
    )
    table = Table()
    for column in ("label", "precision", "recall", "support"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for label, scores in report.per_class.items():
        table.add_row(label, f"{scores['precision']:.3f}", f"{scores['recall']:.3f}", str(scores["support"]))
    out.print(table)
    if report.confusions:
        out.print(
            "confused: "
            + ", ".join(f"{c['label']} -> {c['predicted']} ({c['count']})" for c in report.confusions[:10]),
            soft_wrap=True,
        )


@app.command(cls=_Command, epilog="Example: sparkyfruit models --json")
def models(as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table.")) -> None:
    """The backbones --model accepts: every network of the installed keras.applications, with its vector
    length, its own image size, the widths with ImageNet weights, and the size of those weights."""
    from sparkyfruit.models import listing

    rows = [
        {
            "name": backbone.name,
            "dim": backbone.dim,
            "image_size": backbone.default_size,
            "imagenet_weights": list(backbone.imagenet_alphas) or True,
            "weights_mb": round(backbone.weights_megabytes, 1),
            "keras": f"keras.applications.{backbone.application}",
        }
        for backbone in _or_fail(listing)
    ]
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(
        caption="size: the image side it was trained at (the default --image-size); imagenet: Keras publishes "
        "ImageNet weights (for these --alpha values); weights: their size in float32"
    )
    for column in ("name", "dim", "size", "imagenet", "weights"):
        table.add_column(
            column, justify="right" if column in ("dim", "size", "weights") else "left", no_wrap=column != "imagenet"
        )
    for row in rows:
        alphas = row["imagenet_weights"]
        imagenet = "yes" if alphas is True else "alpha " + " ".join(map(str, alphas))
        table.add_row(row["name"], str(row["dim"]), str(row["image_size"]), imagenet, f"{row['weights_mb']:.0f} MB")
    out.print(table)


@app.command(
    cls=_Command,
    epilog="Example: sparkyfruit similar photo.jpg more-photos/ --index demo-out/keys --k 5 --json",
)
def similar(
    queries: list[str] = typer.Argument(..., metavar="QUERY...", help="Image files, folders, s3:// keys or prefixes."),
    index: str = typer.Option(..., "--index", help="An encode output (local or s3://) to search."),
    k: int = typer.Option(
        5, "--k", help="Neighbours per query; the predicted label is their similarity-weighted vote."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per query instead of tables."),
    s3_endpoint: Optional[str] = S3_ENDPOINT_OPTION,
    s3_region: Optional[str] = S3_REGION_OPTION,
    profile: Optional[str] = PROFILE_OPTION,
) -> None:
    """Recognise images: encode each QUERY with the output's own network (in this process, no Spark), find
    its k most similar rows (cosine), and predict its label from theirs."""
    from sparkyfruit.similar import similar as run_similar

    s3 = _or_fail(_s3_settings, s3_endpoint, s3_region, profile)
    # what runs, named on stderr: the model file (from the index's manifest) and its sha256
    result = _or_fail(
        run_similar, queries, index, s3, k=k, announce=lambda line: err.print(escape(line), soft_wrap=True)
    )
    for answer in result.answers:
        if as_json:
            print(json.dumps(answer.to_json()), flush=True)
        elif answer.error is not None:
            err.print(f"[bold red]error:[/] {escape(answer.query)}: {escape(answer.error)}", soft_wrap=True)
        else:
            table = Table(
                title=f"{escape(answer.query)} -> [bold]{escape(answer.label)}[/]",
                title_justify="left",
                box=box.SIMPLE_HEAD,  # one query's answer: light enough to read many of them in a row
            )
            for column in ("similarity", "label", "path"):
                table.add_column(column, justify="right" if column == "similarity" else "left", overflow="fold")
            for neighbor in answer.neighbors:
                table.add_row(f"{neighbor.similarity:.3f}", escape(neighbor.label), escape(neighbor.path))
            out.print(table)
    if result.failed:
        err.print(f"{result.failed} of {len(result.answers)} query images could not be read or decoded (see above).")
        raise typer.Exit(1)


@app.command(
    cls=_Command,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog="Example: sparkyfruit plan --input s3://my-bucket/fruits-360/Training --mode keys --model mobilenet "
    "--alpha 0.25 --image-size 100 --cores 64 --in 1h (takes encode's flags; writes nothing, starts no Spark)",
)
def plan(
    context: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file with settings, as encode takes it."),
    cores: Optional[int] = typer.Option(
        None, help="Also predict on this many cores (task slots). Needed for a cluster --master."
    ),
    within: Optional[str] = typer.Option(
        None, "--in", help="A wall time to reach (90s, 15m, 1h): how many cores would reach it."
    ),
    get_price: Optional[float] = typer.Option(
        None, help="USD per 1,000 GET requests. [default: S3 Standard, us-east-1]", rich_help_panel=S3_PANEL
    ),
    list_price: Optional[float] = typer.Option(
        None, help="USD per 1,000 LIST requests. [default: S3 Standard, us-east-1]", rich_help_panel=S3_PANEL
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Predict an encode before running it: images, shards, S3 requests and their price, the output's size,
    the driver's memory, and the wall time here and on --cores. Give it encode's flags (--input, --mode,
    --model, --image-size, --engine, S3 options...); it lists the input and times a sample of the images
    with the network encode would use."""
    from sparkyfruit.plan import Prices, parse_duration, settings_of
    from sparkyfruit.plan import plan as run_plan

    settings = _or_fail(settings_of, config, _or_fail(_encode_flags, context.args, "plan"))
    target = _or_fail(parse_duration, within) if within is not None else None
    announce = None if as_json else (lambda line: err.print(escape(line), soft_wrap=True))
    given = {"get_per_1000": get_price, "list_per_1000": list_price}
    prices = Prices(**{name: value for name, value in given.items() if value is not None})
    result = _or_fail(run_plan, settings, cores=cores, target_seconds=target, prices=prices, announce=announce)
    if as_json:
        print(json.dumps(result.to_json()))
        return
    _print_plan(result)


def _print_plan(result) -> None:
    from rich.filesize import decimal as size

    from sparkyfruit.plan import duration_text

    def when(prediction) -> str:
        limited = "; S3's request rate sets it" if prediction.request_limited else ""
        return (
            f"{duration_text(prediction.seconds)} (fixed {prediction.fixed_seconds:.0f} s, images "
            f"{prediction.images_seconds:.0f} s, shards {prediction.shards_seconds:.0f} s{limited})"
        )

    calibration = result.calibration
    facts = Table.grid(padding=(0, 2))
    rows = [
        ("input", f"{result.input} ({result.mode} mode)"),
        ("network", f"{result.network}, {result.image_size} px, {result.engine}"),
        ("images", f"{result.images:,}" + (f" ({size(result.bytes)})" if result.bytes is not None else "")),
        ("shards, tasks", f"{result.shards:,} shards, {result.tasks:,} tasks here"),
        ("S3 requests", f"{result.list_requests:,} LIST, {result.get_requests:,} GET: ${result.request_cost_usd:,.4f}"),
        ("output", f"about {size(result.output_bytes)} of Parquet"),
        ("driver memory", f"about {size(result.driver_listing_bytes)} for the listing"),
        (f"time here ({result.here.cores} cores)", when(result.here)),
    ]
    if result.there is not None:
        rows.append((f"time on {result.there.cores} cores", when(result.there)))
    rows.append(("suggested --shard-size", f"{result.suggested_shard_size:,} (about 90 s of the cores' work)"))
    if result.target_seconds is not None and result.cores_for_target is not None:
        rows.append((f"cores for {duration_text(result.target_seconds)}", f"{result.cores_for_target:,}"))
    rows.append(
        (
            "calibration",
            f"{calibration.images} images, one core: read {calibration.read_seconds * 1000:.1f} ms, decode "
            f"{calibration.decode_seconds * 1000:.1f} ms, network {calibration.network_seconds * 1000:.1f} ms per "
            "image"
            + (
                f"; the S3 server here {calibration.server_read_seconds * 1000:.1f} ms per GET while busy"
                if calibration.server_read_seconds
                else ""
            )
            + f"; planned in {result.planning_seconds:.1f} s",
        )
    )
    for name, value in rows:
        facts.add_row(name, escape(value))
    out.print(facts)
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)


config_app = typer.Typer(help="Settings: what a run would use, and where each value comes from.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command(
    "show",
    cls=_Command,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog="Example: sparkyfruit config show --config examples/run.toml --batch-size 32 --json",
)
def config_show(
    context: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file with settings."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
) -> None:
    """The settings an encode would use (its flags, given here too, over env SPARKYFRUIT_* over the --config
    file over defaults) and where each comes from, secrets hidden."""
    from sparkyfruit.config import settings_with_sources

    flags = _or_fail(_encode_flags, context.args, "config show")
    rows = _or_fail(settings_with_sources, config, flags)
    if as_json:
        print(json.dumps(rows))
        return
    table = Table()
    for column in ("setting", "value", "from"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], "-" if row["value"] is None else str(row["value"]), row["source"])
    out.print(table)


def _encode_flags(args: list[str], command_name: str) -> dict:
    """encode's flags among `args` (given to `command_name`), parsed by encode's own options: {setting: value}
    of those given. Raises ConfigError for anything encode does not take."""
    command = typer.main.get_command(app).get_command(None, "encode")
    try:
        parsed = command.make_context("encode", list(args))
    except Exception as exc:  # click's usage errors (newer typer releases carry a click of their own)
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        raise ConfigError(f"{command_name} takes encode's flags; {message}", "See sparkyfruit encode --help.") from None
    return {name: value for name, value in parsed.params.items() if value is not None and name != "config"}


def _print_summary(summary) -> None:
    out.print(f"[bold]{escape(summary.output)}[/]", soft_wrap=True)
    facts = Table.grid(padding=(0, 2))
    for name, value in [
        ("rows", summary.rows),
        ("ok", summary.ok),
        ("failed", summary.failed),
        ("dim", summary.dim),
        ("model", summary.model + (f", layer {summary.layer}" if summary.layer else "")),
        ("image size", summary.image_size),
        ("pooling", summary.pooling or "- (the layer gives a vector)"),
        ("mode", summary.mode),
        ("engine", summary.engine),
        ("weights sha256", summary.weights_sha256 or "-"),
        *([("model sha256", summary.model_sha256)] if summary.model_sha256 else []),
        ("duration", f"{summary.manifest.duration_seconds:.1f} s"),
        ("table", summary.table),
    ]:
        facts.add_row(name, str(value))
    out.print(facts)
    labels = Table(title="images per label")
    labels.add_column("label")
    labels.add_column("images", justify="right")
    for label, count in summary.labels.items():
        labels.add_row(label, str(count))
    out.print(labels)
    if summary.failures:
        failures = Table(title=f"failures (first {len(summary.failures)} of {summary.failed})")
        failures.add_column("path", overflow="fold")
        failures.add_column("error", overflow="fold")
        for failure in summary.failures:
            failures.add_row(failure["path"], failure["error"])
        out.print(failures)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # before Spark started, or after it stopped: nothing of this run was written
        err.print("interrupted: nothing was written.", soft_wrap=True)
        sys.exit(InterruptedRun.exit_code)
    except Exception as exc:  # a bug of ours: one line by default, the traceback on request
        if os.environ.get("SPARKYFRUIT_DEBUG"):
            raise
        err.print(f"[bold red]internal error:[/] {escape(f'{type(exc).__name__}: {exc}')}", soft_wrap=True)
        err.print("This is a bug in sparkyfruit. Rerun with SPARKYFRUIT_DEBUG=1 for the traceback and report it.")
        sys.exit(1)


__all__ = ["app", "main"]
