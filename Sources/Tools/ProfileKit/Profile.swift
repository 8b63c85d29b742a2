// What `make profile` reads and how it decides whose code ran (the command line and
// the symbols are in Sources/Tools/Profile).
//
// The pc-profile plugin (Sources/Tools/BenchPlugin/pc-profile.c) counts each guest
// instruction per (guest address, host page). Curio's kernel and firmware have
// addresses of their own, but every program is linked at 0x40000000, so a user
// address names no program by itself. QEMU translates each guest page from a host
// page of its own, and a program's code pages hold its own instruction bytes: the
// program whose ELF file has the sampled bytes at the sampled addresses is the one
// that ran from that host page. Pages no program matches stay "?".
//
//   guest address   host page        bytes      count
//   0x40001234      0x7f..4000       0x00b50533   1,000   ─┐ same host page: one program,
//   0x40001238      0x7f..4000       0x0141       1,000   ─┘ the one whose bytes agree

/// One line of the plugin's output: an instruction, where it was fetched from, and
/// how often it ran.
public struct ProfileSample: Equatable, Sendable {
    public var address: UInt64
    public var hostPage: UInt64
    /// The first four bytes QEMU fetched (a compressed instruction uses the low two).
    public var bytes: UInt32
    public var count: UInt64

    public init(address: UInt64, hostPage: UInt64, bytes: UInt32, count: UInt64) {
        self.address = address
        self.hostPage = hostPage
        self.bytes = bytes
        self.count = count
    }
}

/// The plugin's whole output.
public struct Profile: Sendable {
    public var samples: [ProfileSample] = []
    /// How many phases the run had (`rdinstret` marks plus one).
    public var phaseCount = 0
    /// Instructions per phase, when the run counted by phase.
    public var phaseInstructions: [UInt64] = []

    public init() {}

    /// Parses the plugin's output; lines it does not know are skipped.
    public init(parsing text: String) {
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 4, let address = UInt64(fields[0], radix: 16), let page = UInt64(fields[1], radix: 16),
               let bytes = UInt32(fields[2], radix: 16), let count = UInt64(fields[3]) {
                samples.append(ProfileSample(address: address, hostPage: page, bytes: bytes, count: count))
            } else if fields.count == 2, fields[0] == "phases", let count = Int(fields[1]) {
                phaseCount = count
            } else if fields.count == 3, fields[0] == "phase", let count = UInt64(fields[2]) {
                phaseInstructions.append(count)
            }
        }
    }

    public var totalInstructions: UInt64 { samples.reduce(0) { $0 + $1.count } }
}

/// The executable bytes of one ELF file, by virtual address.
public struct ProgramImage: Sendable {
    public var name: String
    var segments: [(address: UInt64, bytes: [UInt8])]

    /// The executable PT_LOAD segments of a little-endian ELF64 file; nil if it is not one.
    public init?(name: String, elf: [UInt8]) {
        func read<T: FixedWidthInteger>(_ offset: Int, as type: T.Type) -> T? {
            guard offset >= 0, offset + MemoryLayout<T>.size <= elf.count else { return nil }
            var value: T = 0
            for index in 0..<MemoryLayout<T>.size { value |= T(elf[offset + index]) << (8 * index) }
            return value
        }
        guard elf.count >= 64, elf[0] == 0x7F, elf[1] == 0x45, elf[2] == 0x4C, elf[3] == 0x46, elf[4] == 2, elf[5] == 1,
              let headerOffset = read(0x20, as: UInt64.self), let entrySize = read(0x36, as: UInt16.self),
              let entryCount = read(0x38, as: UInt16.self) else { return nil }
        self.name = name
        segments = []
        for index in 0..<Int(entryCount) {
            let entry = Int(headerOffset) + index * Int(entrySize)
            guard let type = read(entry, as: UInt32.self), let flags = read(entry + 4, as: UInt32.self),
                  let offset = read(entry + 8, as: UInt64.self), let address = read(entry + 16, as: UInt64.self),
                  let size = read(entry + 32, as: UInt64.self) else { return nil }
            guard type == 1, flags & 1 != 0, offset <= UInt64(elf.count), size <= UInt64(elf.count) - offset else {
                continue
            }
            segments.append((address, Array(elf[Int(offset)..<Int(offset + size)])))
        }
    }

    /// Whether this program has `sample`'s instruction at `sample`'s address.
    func matches(_ sample: ProfileSample) -> Bool {
        for segment in segments where sample.address >= segment.address
            && sample.address + 2 <= segment.address + UInt64(segment.bytes.count) {
            let offset = Int(sample.address - segment.address)
            let low = UInt32(segment.bytes[offset]) | UInt32(segment.bytes[offset + 1]) << 8
            guard low == sample.bytes & 0xFFFF else { return false }
            if low & 3 != 3 { return true }  // compressed: two bytes
            guard offset + 4 <= segment.bytes.count else { return false }
            let high = UInt32(segment.bytes[offset + 2]) | UInt32(segment.bytes[offset + 3]) << 8
            return low | high << 16 == sample.bytes
        }
        return false
    }
}

/// Whose code each sample ran, and the counts per owner and address.
public struct Attribution: Sendable {
    public static let kernel = "kernel"
    public static let firmware = "firmware"
    public static let unknown = "?"

    /// Count per owner, per guest address.
    public private(set) var counts: [String: [UInt64: UInt64]] = [:]

    /// `kernelStart`: where the kernel is loaded (below it, from `firmwareStart`, the
    /// firmware); user programs are matched by their bytes, host page by host page.
    public init(_ samples: [ProfileSample], programs: [ProgramImage], firmwareStart: UInt64 = 0x8000_0000,
                kernelStart: UInt64 = 0x8020_0000) {
        var pages: [UInt64: [ProfileSample]] = [:]
        for sample in samples { pages[sample.hostPage, default: []].append(sample) }
        for (_, pageSamples) in pages {
            let owner: String
            let address = pageSamples[0].address
            if address >= kernelStart {
                owner = Self.kernel
            } else if address >= firmwareStart {
                owner = Self.firmware
            } else {
                var best = Self.unknown
                var bestScore = 0
                for program in programs {
                    let score = pageSamples.reduce(0) { $0 + (program.matches($1) ? 1 : 0) }
                    if score > bestScore {
                        best = program.name
                        bestScore = score
                    }
                }
                owner = best
            }
            for sample in pageSamples { counts[owner, default: [:]][sample.address, default: 0] += sample.count }
        }
    }

    /// Instructions per owner, most first.
    public var totals: [(owner: String, instructions: UInt64)] {
        counts.map { ($0.key, $0.value.values.reduce(0, +)) }.sorted { $0.instructions > $1.instructions }
    }
}
