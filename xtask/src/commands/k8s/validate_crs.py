"""Validates custom resources against the openAPIV3Schema of their CRDs.

Usage: validate_crs.py CRD_DIR FILE...  (run with the k8s-checks venv's
Python: jsonschema and PyYAML come with kubernetes-validate).

Strict like `kubectl apply --validate=strict`: a field the schema does not
declare is an error unless the schema preserves unknown fields. Prints one
line per problem, then `checked N custom resources`; exits 0 either way
(xtask judges the lines), 2 when it cannot run.
"""

import glob
import os
import sys

import jsonschema
import yaml

# YAML 1.1 reads a bare `=` (a matchType in the CRDs' enums) as the `value`
# tag; here it is the string it is in YAML 1.2.
yaml.SafeLoader.add_constructor(
    "tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node)
)


def strict(schema):
    """Declared properties only, unless x-kubernetes-preserve-unknown-fields."""
    if isinstance(schema, dict):
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for value in schema.values():
            strict(value)
    elif isinstance(schema, list):
        for value in schema:
            strict(value)
    return schema


def load_crds(directory):
    schemas = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
        with open(path) as f:
            for crd in yaml.safe_load_all(f):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                spec = crd["spec"]
                for version in spec["versions"]:
                    key = (spec["group"] + "/" + version["name"], spec["names"]["kind"])
                    schema = strict(version["schema"]["openAPIV3Schema"])
                    # metadata is the API server's ObjectMeta, checked elsewhere.
                    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                    schemas[key] = schema
    return schemas


def main():
    if len(sys.argv) < 2:
        print("usage: validate_crs.py CRD_DIR FILE...", file=sys.stderr)
        return 2
    schemas = load_crds(sys.argv[1])
    checked = 0
    for path in sys.argv[2:]:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if not doc:
                    continue
                key = (doc.get("apiVersion") or "", doc.get("kind"))
                group = key[0].split("/")[0] if "/" in key[0] else ""
                if "." not in group or group.endswith(".k8s.io"):
                    continue  # a built-in kind: kubernetes-validate's job
                schema = schemas.get(key)
                name = doc.get("metadata", {}).get("name", "?")
                if schema is None:
                    print(f"{path}: {key[1]} {name}: no CRD for {key[0]} {key[1]}")
                    continue
                checked += 1
                validator = jsonschema.Draft7Validator(schema)
                for error in sorted(validator.iter_errors(doc), key=str):
                    at = "/".join(str(p) for p in error.absolute_path) or "(root)"
                    print(f"{path}: {key[1]} {name}: {at}: {error.message}")
    print(f"checked {checked} custom resources")
    return 0


if __name__ == "__main__":
    sys.exit(main())
