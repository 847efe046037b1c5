"""knlocal: run Knative Services, Brokers and Triggers from their manifests on one machine."""
