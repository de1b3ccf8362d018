"""The web application: FastAPI + Jinja2 + plotly.js. Never imports torch."""
