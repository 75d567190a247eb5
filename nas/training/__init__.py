"""Training runs: a supernet with its method (`supernet`), a stand-alone model (`standalone`),
and what a run does differently under torchrun's several processes (`torchrun`)."""
