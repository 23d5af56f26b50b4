import Foundation
import FuzzSupport
import XBMTraining

/// One input is one YAML config file (`--config run.yaml`): read by Yams, turned into the JSON
/// form and decoded over the defaults, then validated for one rank, as `xbm-dist train` does.
/// An accepted config must read back unchanged from the `config.json` a run would write for it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzYAML(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    expectConfigParsesOrRejects("fuzz.yaml") { try TrainingConfig(yaml: text, source: "--config fuzz.yaml") }
    return 0
}
