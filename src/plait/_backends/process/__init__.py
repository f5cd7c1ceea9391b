"""The process backend: worker processes fed over socket pairs by one dispatcher thread.

    _dispatcher  ProcessBackend: the dispatcher thread, assigning tasks and reading results
    _crew        its workers: started as work needs them, recycled, replaced, kept warm
    _handle      one worker process as the dispatcher sees it      _launch   starting one
    _rerun       a crashed batch (or one its worker could not read), run again item by item
    _frames      the protocol: every frame, its head and how it is read and written
    _codec       what the frames carry, each encode beside its decode
    _salvage     results rebuilt one by one when a batch of them will not load
    _child       the code that runs inside a worker process

Nothing is imported here: a worker process imports ``_child`` and what it needs, no more.
"""
