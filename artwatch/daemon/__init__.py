"""The daemon: `artwatch run` supervises beat, the workers and the review app through
supervisord (a generated config); `artwatch status` shows them and the state of the work.

Modules: `children` (what runs), `config` (supervisord.conf), `listener` (one log with the
child's name on each line), `control` (supervisord's RPC), `runner` (the controller),
`once` (`run --once`: one cycle, then stop), `queues` (broker depths), `status`.
"""
