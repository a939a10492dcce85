"""Reads every table of a lake with the Python `deltalake` package, and the
gold tables' current Parquet files with DuckDB; prints JSON for the Rust
test to compare with what `platform lake` reports.

usage: python lake_interop.py LAKE_DIR TABLES_JSON
"""
import json
import sys

import deltalake
import duckdb

lake_dir, tables_json = sys.argv[1], sys.argv[2]
tables = json.loads(open(tables_json, encoding="utf-8").read())
out = {"rows": {}, "gold": {}}
con = duckdb.connect()
con.execute("SET threads TO 2")
for t in tables:
    layer, name = t["table"].split(".", 1)
    path = f"{lake_dir}/{layer}/{name}"
    dt = deltalake.DeltaTable(path)
    assert dt.version() == t["version"], (t["table"], dt.version(), t["version"])
    data = dt.to_pyarrow_table()
    out["rows"][t["table"]] = data.num_rows
    if layer != "gold":
        continue
    files = dt.file_uris()
    if not files:
        out["gold"][t["table"]] = {"count": 0}
        continue
    rel = con.read_parquet(files)
    numeric = [c for c, ty in zip(rel.columns, rel.types)
               if str(ty).startswith(("DECIMAL", "BIGINT", "DOUBLE", "INTEGER", "HUGEINT"))]
    sums = ", ".join(f'CAST(SUM("{c}") AS DOUBLE) AS "{c}"' for c in numeric)
    query = f"SELECT COUNT(*) AS count{', ' + sums if sums else ''} FROM read_parquet(?)"
    row = con.execute(query, [files]).fetchone()
    cols = ["count"] + numeric
    out["gold"][t["table"]] = {c: (None if v is None else round(float(v), 4)) for c, v in zip(cols, row)}
print(json.dumps(out, sort_keys=True))
