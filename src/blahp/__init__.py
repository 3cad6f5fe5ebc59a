"""pyblahp: a BLAH (batch GAHP) server for HTCondor's gridmanager."""

__version__ = "0.1.0"
