// fsbench: the filesystem benchmarks, counted in retired instructions.
//
// Run under QEMU with `-icount shift=0,sleep=off` (`make bench` does, once on the
// kernel whose `fs` and `storage` keep client state in SSRs and once on a build of
// the same binaries without SSRs). Each phase is bracketed by two `rdinstret` reads,
// so it covers the whole system's work for it: ours, the kernel's, both servers'.
//
// The bracket values this program prints are *not* instruction counts, though: these
// phases wait for the disk, and while the guest idles QEMU jumps its clock — which
// `instret` follows under -icount — to the next timer deadline, Curio's 10 ms tick.
// They then mostly count ticks, and vary from run to run with the host's I/O timing
// (seen: 4.3 million to 20 million "instructions" per KiB written). `make bench`
// therefore counts the instructions themselves with a QEMU plugin that takes these
// very `rdinstret` reads as its marks (Sources/Tools/BenchPlugin); the lines below
// are for a run by hand, and for the phase structure the plugin relies on: exactly
// two reads per phase, four phases per run, in the order listed.
//
//   write   a 4 MiB file written in 4 KiB pieces to a fresh file (open, then the
//           writes bracketed; instructions per KiB)
//   read    the same file read back in 4 KiB pieces from a fresh handle (per KiB)
//   create  200 files in one directory, each created, given 64 bytes and closed
//           (per file)
//   delete  unlink of those 200 (per file)
//
// One run does the four phases in that order; `fsbench [RUNS]` (default 5) repeats
// the run. The filesystem writes through, so every update reaches the disk before
// its reply and a phase's count includes the storage server's work. Each run starts
// from the same disk state (the file and the small files of the previous run are
// deleted outside the brackets), so the runs differ only in what the server caches
// from the one before — which is why the first run is usually the dearest.
//
// One line per phase, in the kernel benchmarks' form with per-unit values (the
// phase's bracket divided by its KiB or files; `make bench` reads `iterations`):
//
//   bench fs-write median=N p10=N p90=N min=N max=N iterations=RUNS unit=KiB
//
// With 5 runs p10 is the least and p90 the greatest value. A phase that fails prints
// `fsbench: PHASE: ERROR` and the program exits 1 (nothing is reported for it).

import ConsoleAPI
import CurioUser
import FileSystemAPI
import UserArch

@main
struct FileSystemBench {
    static let defaultRuns = 5
    static let pieceBytes = 4096
    static let sequentialPieces = 1024                      // 4 MiB
    static let smallFiles = 200
    static let smallFileBytes = 64

    static let directory: StaticString = "/fsbench"
    static let sequentialPath: StaticString = "/fsbench/seq"
    static let smallDirectory: StaticString = "/fsbench/small"

    struct Samples {
        var write: [UInt64] = []
        var read: [UInt64] = []
        var create: [UInt64] = []
        var delete: [UInt64] = []
    }

    static func main() {
        let words = String(decoding: System.arguments, as: UTF8.self).split(separator: " ")
        var runs = defaultRuns
        if let first = words.first {
            guard let value = Int(first), value > 0, value <= 100 else {
                print("usage: fsbench [RUNS]")
                System.exit(2)
            }
            runs = value
        }
        let piece = UnsafeMutableRawBufferPointer.allocate(byteCount: pieceBytes, alignment: 8)
        defer { piece.deallocate() }
        // The first request mounts the volume: outside every bracket.
        prepare()
        var samples = Samples()
        for _ in 0..<runs {
            samples.write.append(BenchReport.perUnit(phase("write") { () throws(FileSystemError) in try writeSequential(piece) },
                                         units: sequentialPieces * pieceBytes / 1024))
            samples.read.append(BenchReport.perUnit(phase("read") { () throws(FileSystemError) in try readSequential(piece) },
                                        units: sequentialPieces * pieceBytes / 1024))
            samples.create.append(BenchReport.perUnit(phase("create") { () throws(FileSystemError) in try createSmall(piece) },
                                          units: smallFiles))
            samples.delete.append(BenchReport.perUnit(phase("delete") { () throws(FileSystemError) in try deleteSmall() },
                                          units: smallFiles))
        }
        print(BenchReport.line("fs-write", samples.write, unit: "KiB"))
        print(BenchReport.line("fs-read", samples.read, unit: "KiB"))
        print(BenchReport.line("fs-create", samples.create, unit: "file"))
        print(BenchReport.line("fs-delete", samples.delete, unit: "file"))
        cleanUp()
    }

    // MARK: Phases

    /// The instructions `body` retires, or exit 1 with the error.
    static func phase(_ name: StaticString, _ body: () throws(FileSystemError) -> UInt64) -> UInt64 {
        do throws(FileSystemError) {
            return try body()
        } catch {
            print("fsbench: \(String(name)): \(String(error.name))")
            System.exit(1)
        }
    }

    /// Creates the file afresh (the previous run's copy is unlinked first, so every
    /// run allocates the same blocks), then brackets the writes.
    static func writeSequential(_ piece: UnsafeMutableRawBufferPointer) throws(FileSystemError) -> UInt64 {
        do throws(FileSystemError) { try FileSystem.unlink(sequentialPath) } catch .noSuchFile {}
        let file = try FileSystem.open(sequentialPath, [.write, .create, .exclusive])
        for index in 0..<pieceBytes { piece[index] = UInt8(truncatingIfNeeded: index &* 7) }
        let start = curio_read_instret()
        for index in 0..<sequentialPieces {
            piece.storeBytes(of: UInt64(index), toByteOffset: 0, as: UInt64.self)
            guard try FileSystem.write(file, from: UnsafeRawBufferPointer(piece)) == pieceBytes else { throw .noSpace }
        }
        let instructions = curio_read_instret() &- start
        try FileSystem.close(file)
        return instructions
    }

    /// Reads the file back through a new handle; each piece must carry its index
    /// (a cheap check that we measured real reads, the same in both builds).
    static func readSequential(_ piece: UnsafeMutableRawBufferPointer) throws(FileSystemError) -> UInt64 {
        let file = try FileSystem.open(sequentialPath, [.read])
        let start = curio_read_instret()
        for index in 0..<sequentialPieces {
            guard try FileSystem.read(file, into: piece) == pieceBytes,
                  piece.load(fromByteOffset: 0, as: UInt64.self) == UInt64(index) else { throw .corrupt }
        }
        let instructions = curio_read_instret() &- start
        try FileSystem.close(file)
        return instructions
    }

    /// Creates, writes and closes `smallFiles` files named f000 ... f199.
    static func createSmall(_ piece: UnsafeMutableRawBufferPointer) throws(FileSystemError) -> UInt64 {
        var name = SmallFileName()
        let data = UnsafeRawBufferPointer(rebasing: piece[0..<smallFileBytes])
        let start = curio_read_instret()
        for index in 0..<smallFiles {
            let file = try name.with(index) { path throws(FileSystemError) in
                try FileSystem.open(path, [.write, .create, .exclusive])
            }
            guard try FileSystem.write(file, from: data) == smallFileBytes else { throw .noSpace }
            try FileSystem.close(file)
        }
        return curio_read_instret() &- start
    }

    static func deleteSmall() throws(FileSystemError) -> UInt64 {
        var name = SmallFileName()
        let start = curio_read_instret()
        for index in 0..<smallFiles {
            try name.with(index) { path throws(FileSystemError) in try FileSystem.unlink(path) }
        }
        return curio_read_instret() &- start
    }

    // MARK: Setup

    static func prepare() {
        for path in [directory, smallDirectory] {
            do throws(FileSystemError) {
                try FileSystem.mkdir(path)
            } catch .exists {
            } catch {
                print("fsbench: mkdir \(String(path)): \(String(error.name))")
                System.exit(1)
            }
        }
    }

    /// Leaves the disk as we found it.
    static func cleanUp() {
        do throws(FileSystemError) {
            try FileSystem.unlink(sequentialPath)
            try FileSystem.rmdir(smallDirectory)
            try FileSystem.rmdir(directory)
        } catch {
            print("fsbench: clean up: \(String(error.name))")
            System.exit(1)
        }
    }
}

/// "/fsbench/small/fNNN" in a fixed buffer whose three digits are rewritten for each
/// file: building a path costs a few instructions, not a String.
struct SmallFileName {
    static let prefix: StaticString = "/fsbench/small/f"
    var bytes: (UInt64, UInt64, UInt64) = (0, 0, 0)

    init() {
        withUnsafeMutableBytes(of: &bytes) { buffer in
            buffer.copyMemory(from: UnsafeRawBufferPointer(start: Self.prefix.utf8Start,
                                                           count: Self.prefix.utf8CodeUnitCount))
        }
    }

    mutating func with<R>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws(FileSystemError) -> R)
        throws(FileSystemError) -> R {
        let length = Self.prefix.utf8CodeUnitCount + 3
        return try withUnsafeMutableBytes(of: &bytes) { buffer throws(FileSystemError) -> R in
            buffer[length - 3] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: index / 100 % 10)
            buffer[length - 2] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: index / 10 % 10)
            buffer[length - 1] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: index % 10)
            return try body(UnsafeRawBufferPointer(rebasing: buffer[0..<length]))
        }
    }
}
