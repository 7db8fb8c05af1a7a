"""The README's ```python blocks run as printed, and what their comments promise holds.

Each block is taken from README.md by its position (the first is the quick start, the second the
Apache Spark one), so an edited block is still the one tested; a statement's comment that lists
columns must name the columns of the frame that statement returns, in order.
"""
import ast
import io
import re
import tokenize
from pathlib import Path

import pandas as pd
import pytest

import recapp.spark
from recapp import metrics
from recapp.data import DataSourceError, load_movielens, synthetic_shop
from recapp.realtime import Engine
from recapp.realtime.engine import RESULT_COLUMNS
from recapp.schema import validate

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks() -> list[tuple[int, str]]:
    """Every ```python block of the README as (line of its first statement, code)."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in BLOCK.finditer(text)]


def block(position: int) -> tuple[int, str]:
    blocks = python_blocks()
    # A third block would go untested: make whoever adds it add its test here.
    assert len(blocks) == 2, f"README.md has {len(blocks)} ```python blocks; this file tests two (quick start, Spark)"
    return blocks[position]


def run_block(first_line: int, code: str) -> tuple[dict, list[tuple[str, object]]]:
    """Execute ``code`` statement by statement; returns its namespace and, for each bare expression
    (a line the README shows the result of), its trailing comment and value. Tracebacks name README lines."""
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(code).readline) if tok.type == tokenize.COMMENT}
    tree = ast.parse(code)
    namespace, shown = {"__name__": "readme"}, []
    for node in tree.body:
        comment = comments.get(node.end_lineno, "")
        ast.increment_lineno(node, first_line - 1)
        if isinstance(node, ast.Expr):
            value = eval(compile(ast.Expression(node.value), str(README), "eval"), namespace)
            shown.append((comment, value))
        else:
            exec(compile(ast.Module([node], []), str(README), "exec"), namespace)
    return namespace, shown


def columns_in(comment: str) -> list[str]:
    return [name.strip() for name in comment.split(",")]


@pytest.fixture(scope="module")
def movielens_cached():
    """The quick start reads MovieLens-100K from the cache ``make data`` fills; it is never downloaded here."""
    try:
        load_movielens(allow_download=False)
    except DataSourceError as exc:
        pytest.skip(f"MovieLens-100K is not in the cache: {exc}")


def test_readme_quick_start_runs_and_returns_the_columns_its_comments_name(movielens_cached):
    namespace, shown = run_block(*block(0))
    (recs_comment, recs), (_, ingested), (live_comment, live) = shown
    assert isinstance(recs, pd.DataFrame) and list(recs.columns) == columns_in(recs_comment)
    test = namespace["test"]
    assert set(recs["user_id"]) == set(test["user_id"]) and recs.groupby("user_id").size().max() == 10
    assert (ingested.n_ingested, ingested.n_rejected) == (1, 0)
    assert isinstance(live, pd.DataFrame) and list(live.columns) == columns_in(live_comment)
    assert len(live) == 10
    assert namespace["engine"].stats()["events_ingested"] == 1


class SessionHere:
    """The shared session, its ``read`` resolving relative paths against this process's working folder.

    Spark resolves a relative path against the JVM's folder, fixed when the session started (where pytest
    was run); a reader's own session starts in its working folder, where the README's ``events.parquet`` is.
    """

    def __init__(self, session):
        self._session = session

    def __getattr__(self, name):
        return getattr(self._session, name)

    @property
    def read(self):
        reader = self._session.read
        here = Path.cwd()

        class Reader:
            def __getattr__(self, name):
                return getattr(reader, name)

            def parquet(self, *paths, **options):
                return reader.parquet(*[str(here / path) for path in paths], **options)

        return Reader()


@pytest.fixture
def events_parquet(tmp_path, monkeypatch, spark):
    """A small valid log as ``events.parquet`` in the working folder, and ``rs.spark_session()`` answering with the
    tests' shared local[2] session (the README's own call would start a second one)."""
    events = synthetic_shop(n_users=60, n_items=40, n_events=1500, random_state=3).events
    events.to_parquet(tmp_path / "events.parquet", index=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(recapp.spark, "spark_session", lambda *args, **kwargs: SessionHere(spark))
    return events


def test_readme_spark_block_runs_and_keeps_its_comments_promises(events_parquet):
    namespace, shown = run_block(*block(1))
    (scores_comment, scores), (_, engine) = shown
    events, report = namespace["events"], namespace["report"]
    # "recapp.schema's aliases, rules, drop reasons": the same rows kept and dropped for the same reasons.
    _, local_report = validate(events_parquet)
    assert (report.n_input, report.n_output) == (local_report.n_input, local_report.n_output)
    assert report.counts().to_dict() == local_report.counts().to_dict()
    # "distributed top-k, training items removed"
    recs = namespace["recs"].toPandas()
    train = namespace["train"].toPandas()
    assert list(recs.columns) == ["user_id", "item_id", "score", "rank"] and recs.groupby("user_id").size().max() == 10
    seen = set(zip(train["user_id"], train["item_id"]))
    assert not any(pair in seen for pair in zip(recs["user_id"], recs["item_id"]))
    # "precision, recall, NDCG, MAP, MRR, hit rate: equal to recapp.metrics": every metric returned is named
    named = {"precision": "precision_at_k", "recall": "recall_at_k", "NDCG": "ndcg_at_k", "MAP": "map_at_k",
             "MRR": "mrr_at_k", "hit rate": "hit_rate_at_k"}
    assert all(label in scores_comment for label in named), scores_comment
    assert set(scores) == set(named.values()), sorted(scores)
    local = metrics.ranking_metrics(namespace["test"].toPandas(), recs, k=10)
    for label, name in named.items():
        assert scores[name] == pytest.approx(local[name], abs=1e-9), label
    # "the cluster's factors served per event by the live engine"
    assert isinstance(engine, Engine)
    user, item = train.sort_values(["user_id", "item_id"]).iloc[0][["user_id", "item_id"]].astype(int)
    assert engine.ingest({"user_id": user, "item_id": item, "event": "click"}).n_ingested == 1
    live = engine.recommend(user)
    assert list(live.columns) == list(RESULT_COLUMNS) and len(live) == 10
    events.unpersist()
