import Foundation
import FuzzSupport
import XBMTraining

/// One input is one config file (`--config`, or a run's `config.json` read on `--resume`): it is
/// decoded over the defaults and validated for one rank, as `xbm-dist train` does. An accepted
/// config must read back unchanged from the `config.json` a run would write for it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let file = Data(bytes: data, count: size)
    expectConfigParsesOrRejects("fuzz.json") { try TrainingConfig(json: file, source: "--config fuzz.json") }
    return 0
}
