"""Scale-out on Ray: Ray Train workers for every trainer, Ray actors for generation and judging.

Nothing here is imported unless a config asks for ``distributed: {backend: ray, ...}``; the default
(``backend: none``) runs in one process and needs no Ray.

* :mod:`.config` — :class:`DistributedConfig`, the one home of the scale-out settings (no Ray import);
* :mod:`.cluster` — start or attach to Ray (``address`` / ``RAY_ADDRESS`` / a local instance) and
  refuse, before anything is scheduled, worker requests the cluster cannot place;
* :mod:`.train` — run any registered trainer inside ``ray.train.torch.TorchTrainer`` (one process per
  worker, torch.distributed set up by Ray Train, our loop's data-parallel code unchanged);
* :mod:`.actors` — generation shards over N actors, each holding a model replica; a killed actor's
  shard is redone by a fresh actor.
"""
