import XBMKernels
import XBMTraining
import XCTest

final class BLASKernelsTests: XCTestCase {
    func testGenericKernelsAreReplacedByTheWidestTheCPUSupports() {
        let avx512: Set = ["sse3", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl"]
        XCTAssertEqual(BLASKernels.better(than: "Prescott", flags: avx512), "SkylakeX")
        XCTAssertEqual(BLASKernels.better(than: "Prescott", flags: ["sse3", "avx", "avx2", "fma"]), "Haswell")
        // AVX-512 foundation alone (no BW/DQ/VL, e.g. Knights Landing) is not what SkylakeX kernels need.
        XCTAssertEqual(BLASKernels.better(than: "Nehalem", flags: ["avx2", "fma", "avx512f"]), "Haswell")
        XCTAssertNil(BLASKernels.better(than: "Prescott", flags: ["sse3", "avx"]), "no AVX2: keep the generic kernels")
        XCTAssertNil(BLASKernels.better(than: "Haswell", flags: avx512), "OpenBLAS' own AVX2 choice is kept")
        XCTAssertNil(BLASKernels.better(than: "Zen", flags: avx512))
    }

    func testTheKernelsInUseComputeCorrectProducts() {
        XCTAssertEqual(BLASCheck.run().map(\.description), [])
    }
}
