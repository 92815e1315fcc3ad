"""The web application (``pathways web``): FastAPI, templates rendered on the server, htmx served
by the app itself. One router per audience (``routes/``): log-in for everyone, the care team's
worklist and forms; coordinators' and auditors' pages come as routers of their own.

Contract: routes are thin. They check the session and the role's permission, call
``pathways.orchestration`` (which audits reads and denials) or a method of the store acting for
the logged-in account (log-ins, log-outs and refused CSRF tokens are audited through
``Store.record_audit``), and render. Nothing here opens a database session (the store's methods
do), imports Prefect or a database library, or puts patient data in a URL or a log line
(pseudonymous enrollment and patient ids only). Time comes from the settings' clock.
"""

from pathways.web.app import create_app
from pathways.web.settings import WebSettings

__all__ = ["WebSettings", "create_app"]
