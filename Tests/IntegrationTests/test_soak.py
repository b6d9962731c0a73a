"""The soak's 3-minute version (Tests/Soak/soak.py; `make soak MINUTES=30` runs
the long one): six services send traces, metrics and logs through the
OpenTelemetry SDK's own exporters (gRPC and HTTP, to the right port and to
the wrong one) through otlp -> [attributes, batch] -> [file, otlp_grpc with a
persistent queue] into an upstream otlpd that is stopped and started, while
the config is reloaded every 30 s, the main otlpd is killed with kill -9 and
started again, and the queue reaches its max_size once. Every acknowledged
record must be in the file and at the upstream (duplicates allowed, losses
none), RSS after warm-up grow less than 10 %, the fds come back, and
/metrics and /services count what the soak had acknowledged.

The script does the work and the checks; this test runs it as a subprocess
and holds it to exit 0, printing its summary (and the failing checks)."""
import json
import os
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parent.parent / "Soak" / "soak.py"
MINUTES = 3


def test_soak_three_minutes(otlpd_binary, tmp_path):
    out = tmp_path / "soak"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run([sys.executable, str(SOAK), "--otlpd", otlpd_binary, "--minutes", str(MINUTES), "--out", str(out)],
                            capture_output=True, text=True, env=env, timeout=MINUTES * 60 + 180)
    print(result.stdout[-20000:])
    if result.stderr:
        print("stderr:\n" + result.stderr[-5000:])
    summary_path = out / "soak-summary.json"
    assert summary_path.exists(), f"soak.py wrote no summary (exit {result.returncode}):\n{result.stderr[-5000:]}"
    summary = json.loads(summary_path.read_text())
    failed = "\n".join(f"- {f['name']}: {f['detail']}" for f in summary["failed"])
    assert result.returncode == 0 and summary["ok"], f"the soak failed (exit {result.returncode}):\n{failed}"
    assert (out / "soak.png").stat().st_size > 10_000, "the RSS/fd plot"
    for row in summary["delivery"].values():
        assert row["file"]["lost"] == 0 and row["upstream"]["lost"] == 0
