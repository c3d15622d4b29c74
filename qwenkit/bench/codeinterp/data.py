"""Input files of the built-in code-interpreter tasks, generated deterministically (fixed seeds, pure Python).

Three tables: ``sales.csv`` (month × region × product), ``students.xlsx`` (one sheet of exam scores) and
``weather.csv`` (daily weather of two cities). The same rows give the gold answers of the data questions.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from dataclasses import dataclass
from functools import cache
from typing import Any

REGIONS = ("North", "South", "East", "West")
PRODUCTS = {"A": 9.5, "B": 12.0, "C": 20.25}
CLASSES = ("A", "B", "C")
CITIES = ("Beijing", "Shanghai")


@dataclass(frozen=True)
class Tables:
    """The generated rows.

    Attributes:
        sales: ``month, region, product, units, price, revenue``.
        students: ``name, class, gender, math, chinese, english``.
        weather: ``date, city, temp_c, rain_mm``.
    """

    sales: list[dict[str, Any]]
    students: list[dict[str, Any]]
    weather: list[dict[str, Any]]


@cache
def tables() -> Tables:
    """Generate the rows (same every time: each table has its own seeded generator)."""
    rng = random.Random(20240501)
    sales = []
    for month in range(1, 13):
        for region in REGIONS:
            for product, price in PRODUCTS.items():
                units = rng.randint(5, 60)
                sales.append({"month": month, "region": region, "product": product, "units": units,
                              "price": price, "revenue": round(units * price, 2)})
    rng = random.Random(20240502)
    students = []
    for i in range(60):
        students.append({"name": f"S{i + 1:03d}", "class": CLASSES[i % 3], "gender": "F" if rng.random() < 0.5 else "M",
                         "math": rng.randint(40, 100), "chinese": rng.randint(50, 100),
                         "english": rng.randint(45, 100)})
    rng = random.Random(20240503)
    weather = []
    start = dt.date(2023, 1, 1)
    for city, base in zip(CITIES, (2.0, 8.0), strict=True):
        for d in range(120):
            temp = round(base + d * 0.15 + rng.uniform(-4, 4), 1)
            rain = round(rng.uniform(0, 12), 1) if rng.random() < 0.3 else 0.0
            weather.append({"date": (start + dt.timedelta(days=d)).isoformat(), "city": city, "temp_c": temp,
                            "rain_mm": rain})
    return Tables(sales, students, weather)


def _csv(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def _xlsx(rows: list[dict[str, Any]], sheet: str) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = sheet
    ws.append(list(rows[0]))
    for r in rows:
        ws.append(list(r.values()))
    fixed = dt.datetime(2024, 1, 1)
    wb.properties.created = fixed
    wb.properties.modified = fixed
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


@cache
def files() -> dict[str, bytes]:
    """The input files by name."""
    t = tables()
    return {"sales.csv": _csv(t.sales), "students.xlsx": _xlsx(t.students, "scores"),
            "weather.csv": _csv(t.weather)}
