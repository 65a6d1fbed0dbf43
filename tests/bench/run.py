"""`make bench`: every benchmark, one after the other, each printing its
own table of medians.  Figures only: nothing here is a test."""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

for name in ("pull.py", "tasks.py", "api.py", "runtask.py", "api_hostile.py", "services.py", "lb.py",
             "lb_service.py"):
    print(f"\n=== {name}", flush=True)
    subprocess.run([sys.executable, str(HERE / name)], check=True)
