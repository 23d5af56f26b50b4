import ArgumentParser
import Foundation
@testable import xbm_dist

/// The long option names a help text lists (the first name of each option line).
func optionNames(inHelp help: String) -> Set<String> {
    let pattern = try! NSRegularExpression(pattern: #"^\s+(?:-\w, )?--([a-z0-9-]+)"#, options: .anchorsMatchLines)
    return Set(pattern.matches(in: help, range: NSRange(help.startIndex..., in: help)).map {
        String(help[Range($0.range(at: 1), in: help)!])
    })
}

/// The options of `train` that configure the run: what `train --help` lists, without help,
/// the config file, printing it, the resume switches and how the ranks are launched.
func trainConfigurationOptions() -> Set<String> {
    optionNames(inHelp: TrainCommand.helpMessage(columns: 400))
        .subtracting(["help", "config", "print-config", "resume", "resume-override", "simulate-ranks", "threads"])
}
