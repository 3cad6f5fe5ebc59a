"""The CE-side SSH layer: ``gahp-ssh``, a drop-in for HTCondor's ``remote_gahp``.

asyncssh is asyncio-only, so it is imported by ``connect``, ``master`` and ``session`` alone; the
launcher (``launcher``), the argument parser (``args``) and the banner gate (``banner``) stay light
and free of it, so that a GAHP start that reuses a running master pays for neither.
"""
