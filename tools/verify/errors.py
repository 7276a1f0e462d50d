"""The one error the verifier stops on: it cannot run at all (no helm, no cdktf.out, a broken allow list)."""


class VerifyError(Exception):
    """Printed as one line `error: ...`, exit status 2, no traceback."""
