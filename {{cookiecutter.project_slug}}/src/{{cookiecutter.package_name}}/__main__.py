"""`python -m {{ cookiecutter.package_name }} [--server.port N ...]`: serve the app.

Goes through Streamlit's own command line, so STREAMLIT_* variables and --server.*
flags work exactly as with `streamlit run`, wherever the package is installed.
"""

import sys
from pathlib import Path

from streamlit.web import cli


def main() -> None:
    serve = Path(__file__).with_name("serve.py")
    sys.argv = ["streamlit", "run", str(serve), *sys.argv[1:]]
    sys.exit(cli.main())


if __name__ == "__main__":
    main()
