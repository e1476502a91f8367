"""Activity log: what users did and with which filters, written to the primary."""

from __future__ import annotations

import json

import streamlit as st

from ..queries import recent_activity, record_activity
from ..state import session_id, user_email

NOTE_MAX_CHARS = 2000
ROWS_SHOWN = 50


def _note_form() -> None:
    with st.form("activity_note", clear_on_submit=True):
        note = st.text_area("Add a note to the log", max_chars=NOTE_MAX_CHARS)
        if not st.form_submit_button("Save note"):
            return
    if not note.strip():
        st.warning("The note is empty.")
        return
    record_activity(session_id(), "note", {"length": len(note)}, note=note, user_email=user_email())
    st.success("Note saved.")


def render() -> None:
    st.title("Activity log")
    st.caption("Filter changes, refreshes and notes, kept in the database across sessions.")
    _note_form()
    only_mine = st.toggle("Only this session", key="activity_only_mine")
    frame = recent_activity(ROWS_SHOWN, session_id() if only_mine else None)
    if frame.empty:
        st.info("Nothing recorded yet. Apply a filter on the Sales page.")
        return
    frame = frame.assign(widget_context=frame["widget_context"].map(json.dumps))
    st.dataframe(
        frame,
        hide_index=True,
        column_config={
            "created_at": st.column_config.DatetimeColumn("When"),
            "action": "Action",
            "widget_context": "Widget context",
            "note": "Note",
            "session_id": "Session",
        },
    )
