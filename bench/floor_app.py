"""Streamlit's floor: the cheapest page there is, to compare the default page's rerun with."""

import streamlit as st

st.write("Hello")
