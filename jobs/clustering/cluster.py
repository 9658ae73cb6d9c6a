"""The classic clustering workflow as a raysub job: load a CSV, train a k-means model with
scikit-learn, save it, load it back and predict. Needs `pip: [scikit-learn]` in the runtime env."""
import csv
import json
import os
import sys
import time

import joblib
import numpy as np
import sklearn
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score

DATA = os.environ.get("DATA", "points.csv")
MODEL = os.environ.get("MODEL", "model.joblib")
K = int(os.environ.get("K", "3"))

started = time.time()
print(f"python {sys.executable}, scikit-learn {sklearn.__version__}, numpy {np.__version__}")

# 1. Load the CSV: two features per row, and the cluster each point was drawn from (kept aside
#    to score the result, never shown to the model).
with open(DATA, newline="") as f:
    rows = list(csv.DictReader(f))
X = np.array([[float(r["x"]), float(r["y"])] for r in rows])
truth = np.array([int(r["true_cluster"]) for r in rows])
print(f"loaded {len(X)} points from {DATA}")

# 2. Train.
model = KMeans(n_clusters=K, n_init=10, random_state=0).fit(X)
silhouette = silhouette_score(X, model.labels_)
ari = adjusted_rand_score(truth, model.labels_)
print(f"trained k-means with k={K}: inertia {model.inertia_:.1f}, silhouette {silhouette:.3f}, "
      f"agreement with the true clusters (ARI) {ari:.3f}")

# 3. Save, and 4. load it back (as a separate predicting step would) and predict new points.
joblib.dump(model, MODEL)
print(f"saved the model to {MODEL} ({os.path.getsize(MODEL)} bytes)")
loaded = joblib.load(MODEL)
new_points = np.array([[-4.2, -1.8], [0.3, 4.4], [5.1, -0.7], [-3.6, -2.5]])
predicted = loaded.predict(new_points)
for point, label in zip(new_points.tolist(), predicted.tolist()):
    print(f"predict {point} -> cluster {label}")

print("RESULT " + json.dumps({
    "points": len(X),
    "k": K,
    "silhouette": round(float(silhouette), 4),
    "ari": round(float(ari), 4),
    "predicted": predicted.tolist(),
    "seconds": round(time.time() - started, 3),
}))
