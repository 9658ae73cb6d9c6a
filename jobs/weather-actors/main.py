"""Two actors, each holding one year of daily readings of a weather station, compared by the driver.

The data set is synthetic and made here: a seasonal curve plus noise per station, one CSV text per
station, stored once with ray.put and loaded by each actor. Written as Ray's docs write actor
programs: `import ray`, no `__main__` guard.

    raysub job submit --working-dir jobs/weather-actors --entrypoint-num-cpus 0 -- python3 main.py
"""
import csv
import datetime
import io
import math
import random

import ray

HOT_C = 30.0


def make_year(station, mean_c, swing_c, seed, year=2025):
    rng = random.Random(seed)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["station", "date", "high_c", "low_c", "rain_mm"])
    day = datetime.date(year, 1, 1)
    while day.year == year:
        season = -math.cos(2 * math.pi * (day.timetuple().tm_yday - 15) / 365)
        high = mean_c + swing_c * season + rng.gauss(0, 3)
        low = high - 6 - abs(rng.gauss(0, 2))
        rain = max(0.0, rng.gauss(-2, 6))
        w.writerow([station, day.isoformat(), "%.1f" % high, "%.1f" % low, "%.1f" % rain])
        day += datetime.timedelta(days=1)
    return out.getvalue()


@ray.remote
class Station:
    """Loads one station's year of readings and answers questions about it."""

    def __init__(self, csv_text):
        rows = list(csv.DictReader(io.StringIO(csv_text)))
        self.name = rows[0]["station"]
        self.days = [(r["date"], float(r["high_c"]), float(r["low_c"]), float(r["rain_mm"])) for r in rows]

    def summary(self):
        highs = [d[1] for d in self.days]
        hottest = max(self.days, key=lambda d: d[1])
        return {
            "station": self.name,
            "days": len(self.days),
            "mean_high_c": round(sum(highs) / len(highs), 2),
            "hottest": [hottest[0], hottest[1]],
            "rainy_days": sum(1 for d in self.days if d[3] > 1),
        }

    def hot_days(self, threshold_c):
        return sum(1 for d in self.days if d[1] > threshold_c)

    def monthly_hot_days(self, threshold_c):
        months = [0] * 12
        for date, high, _, _ in self.days:
            if high > threshold_c:
                months[int(date[5:7]) - 1] += 1
        return months


seville = Station.remote(ray.put(make_year("Seville", 24, 10, seed=1)))
bergen = Station.remote(ray.put(make_year("Bergen", 11, 7, seed=2)))
for s in ray.get([seville.summary.remote(), bergen.summary.remote()]):
    print("%(station)-8s %(days)d days, mean high %(mean_high_c).1f C, hottest %(hottest)s, %(rainy_days)d rainy days" % s)
hot = dict(zip(["Seville", "Bergen"], ray.get([seville.hot_days.remote(HOT_C), bergen.hot_days.remote(HOT_C)])))
for name, n in hot.items():
    print("%-8s %d days above %.0f C" % (name, n, HOT_C))
months = ray.get(seville.monthly_hot_days.remote(HOT_C))
print("Seville's hot days by month: %s" % months)
warmer = max(hot, key=hot.get)
print("warmer station: %s (%d more hot days)" % (warmer, abs(hot["Seville"] - hot["Bergen"])))
