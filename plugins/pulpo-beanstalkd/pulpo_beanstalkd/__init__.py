"""pulpo-beanstalkd: the ``beanstalkd`` queue adapter, on greenstalk.

Importing this package does not import greenstalk; the adapter module does, when the adapter is
first created.
"""

from __future__ import annotations

__version__ = "0.1.0"
