"""The web process never imports TensorFlow: every blueprint's pages are served in a fresh interpreter."""
import json
import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = """
import json, sys, tempfile, os
from labeler import create_app
from labeler.db import database
from labeler.importer import import_file
from labeler.users import create_user
folder = tempfile.mkdtemp()
app = create_app({"DATABASE": os.path.join(folder, "l.sqlite3"), "SECRET_KEY": "x", "WTF_CSRF_ENABLED": False})
with database.connection_context():
    import_file(sys.argv[1], "cc", label_column="Class")
    create_user("root", "long enough password", "admin")
client = app.test_client()
client.post("/login", data={"name": "root", "password": "long enough password"})
statuses = {}
for rule in app.url_map.iter_rules():
    if "GET" in rule.methods and not rule.arguments - {"name"} and rule.endpoint != "static":
        url = rule.build({"name": "cc"} if "name" in rule.arguments else {})[1]
        statuses[url] = client.get(url).status_code
print(json.dumps({"statuses": statuses, "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))}))
"""


def test_pages_load_without_tensorflow(small_csv):
    result = subprocess.run([sys.executable, "-c", SCRIPT, small_csv], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(report["statuses"]) >= 3
    assert all(status == 200 for status in report["statuses"].values()), report["statuses"]
    assert report["loaded"] == []
