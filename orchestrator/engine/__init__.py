"""The docker layer: one adapter owns the docker client; containers are labelled and cleaned up."""
