"""Print the text outputs of an executed notebook (for reviewing a run in a terminal)."""

import json
import sys

for path in sys.argv[1:]:
    nb = json.load(open(path, encoding="utf-8"))
    for c in nb["cells"]:
        if c["cell_type"] != "code":
            continue
        for o in c.get("outputs", []):
            text = "".join(o.get("text", "")) or "".join(o.get("data", {}).get("text/plain", ""))
            if o.get("output_type") == "error":
                text = f"ERROR {o['ename']}: {o['evalue']}"
            if text.strip() and "extracting activations" not in text:
                print(">>", text[:2000])
