"""Write each service's AsyncAPI document (generated from its subscribers) and OpenAPI document
(from its FastAPI routes) to ``docs/``. Nothing connects: building an app does not touch the network.

    python -m scripts.gen_docs [--out docs]
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

from shared.run import available
from shared.settings import Settings


def generate(out: Path) -> list[Path]:
    written = []
    for name in available():
        module = importlib.import_module(f"services.{name}.app")
        app = module.create_app(Settings())
        rt = app.state.runtime
        docs = {
            out / "asyncapi" / f"{name}.json": rt.asyncapi(app.description).to_specification().to_jsonable(),
            out / "openapi" / f"{name}.json": app.openapi(),
        }
        for path, doc in docs.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(doc, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
            written.append(path)
    return written


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="docs")
    for path in generate(Path(p.parse_args().out)):
        print(path)


if __name__ == "__main__":
    main()
