// Errors that every rank meets identically, because every rank reads the same files and
// options and runs the same deterministic code: they end the job with one message from
// rank 0 and exit code 2 (see `Launcher`), instead of an MPI abort.
extension DatasetError: SameOnEveryRankError {}
extension NpyError: SameOnEveryRankError {}
extension SamplerError: SameOnEveryRankError {}
extension CrossBatchMemoryError: SameOnEveryRankError {}
