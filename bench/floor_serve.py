"""bench/floor_app.py served the way the generated app serves its pages (bench/capacity.py).

Run from the rendered project's folder so its `.streamlit/config.toml` applies (no file
watcher, headless, the same limits), as an `st.App` whose lifespan applies the generated
package's two per-rerun fixes: TCP_NODELAY on the listening socket and `gc.freeze()` of
what start-up allocated (Streamlit runs a full collection after every rerun). Left out:
the metrics guard, admission and memory-monitoring middleware, page imports and engines.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import streamlit as st
from streamlit_dashboard.memory import freeze_startup_objects
from streamlit_dashboard.tcp import disable_nagle_on_listeners


@asynccontextmanager
async def lifespan(_app: st.App) -> AsyncIterator[None]:
    disable_nagle_on_listeners()
    freeze_startup_objects()
    yield


app = st.App(Path(__file__).with_name("floor_app.py"), lifespan=lifespan)
