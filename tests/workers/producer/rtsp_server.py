"""A real RTSP server for the producer's tests (GStreamer's gst-rtsp-server).

Runs under the SYSTEM python (`/usr/bin/python3`, which has Debian's python3-gi and
gir1.2-gst-rtsp-server-1.0), not the project's venv:

    /usr/bin/python3 rtsp_server.py PORT VIDEO.mp4 [USER]

serves the H.264 MP4 at rtsp://127.0.0.1:PORT/cam in real time, a fresh pipeline (from the
start of the file) per client, and prints "ready" once it listens. With USER, clients must
log in (RTSP basic auth) as USER with the password in $RTSP_PASSWORD (never on argv).
Killing the process is how tests simulate a camera going away.
"""

import os
import sys

import gi  # type: ignore[import-not-found]

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # type: ignore[import-not-found]  # noqa: E402


def require_login(server: "GstRtspServer.RTSPServer", factory: object, user: str) -> None:
    """Only USER with $RTSP_PASSWORD may see or play the media."""
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "viewer")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, os.environ["RTSP_PASSWORD"]), token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_permission_for_role("viewer", "media.factory.access", True)
    permissions.add_permission_for_role("viewer", "media.factory.construct", True)
    factory.set_permissions(permissions)  # type: ignore[attr-defined]


def main(port: str, video: str, user: str | None = None) -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( filesrc location={video} ! qtdemux ! h264parse "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(False)
    if user:
        require_login(server, factory, user)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on port {port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main(*sys.argv[1:4])
