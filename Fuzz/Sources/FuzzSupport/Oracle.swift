import Collectives
import XBMTraining

/// What every harness asks of a parser fed an untrusted input: it returns, or it throws a
/// `SameOnEveryRankError` whose description is one non-empty line. That is the contract of a
/// file every rank reads: `xbm-dist` then ends every rank with that line after "error: " and
/// exit code 2, where any other error would abort the MPI job (Docs/distributed.md, Failures).
/// Anything else — a trap, another kind of error, a message that is empty or spans lines, a
/// broken invariant of the result — ends the process through `fatalError`, which libFuzzer
/// reports as a crash and saves the input of.
public func expectParsesOrRejects(_ parse: () throws -> Void) {
    do {
        try parse()
    } catch {
        require(error is any SameOnEveryRankError, "an error of another kind escaped the parser: \(type(of: error)): \(error)")
        let message = "\(error)"
        require(!message.isEmpty, "an error with an empty message: \(type(of: error))")
        require(!message.contains(where: \.isNewline), "an error message of more than one line: \(message.debugDescription)")
    }
}

/// Stops the fuzzer on a broken property; `message` becomes the crash report's reason.
public func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError("fuzz: " + message()) }
}

/// The check of a config file in either form: `decode` reads it over the defaults; an accepted
/// config must read back unchanged from the `config.json` a run would write for it, then
/// validate for one rank or be refused in one line, as `xbm-dist train` does.
public func expectConfigParsesOrRejects(_ source: String, _ decode: () throws -> TrainingConfig) {
    expectParsesOrRejects {
        let config = try decode()
        let reread = try TrainingConfig(json: config.json(), source: "config.json written for \(source)")
        require(reread == config, "config.json does not read back as the config it was written from")
        try config.validate(ranks: 1)
    }
}
