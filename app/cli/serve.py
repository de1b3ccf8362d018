"""``earmark serve``: the web app under uvicorn."""

from __future__ import annotations

import typer

from app.cli import app
from app.cli.common import console, settings, user_errors


@app.command()
def serve(
    host: str = typer.Option(None, help="Address to bind (default: EARMARK_HOST, else 127.0.0.1). Anything but "
                             "loopback needs EARMARK_TOKEN."),
    port: int = typer.Option(None, help="Port (default: EARMARK_PORT, else 8000)."),
    reload: bool = typer.Option(False, help="Restart on code changes (development)."),
) -> None:
    """Serve the web app: overview, confusion matrix, clip list, embedding cloud, clip pages, /api."""
    import uvicorn

    from app.web.security import check_bind

    cfg = settings()
    host = host or cfg.host
    port = port or cfg.port
    cfg = cfg.model_copy(update={"host": host, "port": port})  # the host check answers to the bound name
    with user_errors():
        check_bind(host, cfg.token)
        if not reload:
            from app.web.main import create_app

            web_app = create_app(cfg, warm=True)  # opens (and migrates) the store before binding
    console.print(f"earmark on [bold]http://{host}:{port}/[/]  (store: {cfg.url.split('@')[-1]})")
    if reload:
        import os

        os.environ.update(EARMARK_HOST=host, EARMARK_PORT=str(port))  # for the reloader's app_from_env
        uvicorn.run("app.web.main:app_from_env", factory=True, host=host, port=port, reload=True, log_level="info")
    else:
        uvicorn.run(web_app, host=host, port=port, log_level="warning")
