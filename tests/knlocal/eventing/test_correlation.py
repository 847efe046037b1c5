"""knlocal/eventing/correlation.py: the extensions the application names, in log lines."""

from cloudevents.core.v1.event import CloudEvent

from knlocal.eventing.correlation import NO_CORRELATION, Correlation

EVENT = CloudEvent({"id": "e-1", "source": "/t", "type": "t", "operationid": "op-7"})


def test_a_label_names_each_extension_and_its_value() -> None:
    correlation = Correlation(("operationid", "tenant"))
    assert correlation.label(EVENT) == "e-1 (operationid op-7, tenant None)"
    assert correlation.extra(EVENT) == {"operationid": "op-7", "tenant": None}


def test_without_extensions_a_label_is_the_id() -> None:
    assert NO_CORRELATION.label(EVENT) == "e-1"
    assert NO_CORRELATION.extra(EVENT) == {}
