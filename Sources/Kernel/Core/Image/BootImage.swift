// BootImage: the programs the kernel carries, and what each may do.
//
// Curio has no file system at boot. Everything that will ever run is packed by
// the host tool `mkimage` into one boot image, linked into the kernel: a table
// of program entries, then each program's ELF file, its symbol table and its
// string table. An entry is the compiled form of the program's section in
// system.toml: its name, priority, memory budget, the flags that grant
// authority (start at boot, manage other programs, receive the kernel command
// line), which programs it may send to (a 64-bit mask, one bit per program
// index, which is why there are at most 64 programs), and the interrupts and
// device ranges it owns. Authority is decided here, at build time; the kernel
// only enforces it.
//
// Symbols travel in the image, already demangled, so that when a program
// faults the kernel can print "shell: store page fault at main()+0x1c" without
// a debugger. Each program's symbols are sorted by address; `symbolize` is a
// binary search for the greatest address not above the one asked about.
//
// The image is checked once, in `init`, as if it were hostile: every count
// against its limit, every (offset, size) pair against the image without
// overflow, every name, priority, flag bit and reserved byte, and every
// sendMask bit against the program count. The accessors then decode fields
// from the checked bytes without copying anything: the kernel has no heap, so
// a `BootImage` is just the image's address, and a `ProgramDescriptor` is a
// small fixed-size value. Whether each ELF is a good executable is for
// `ELFImage` to decide when the program is loaded, because only the loader
// knows the address range programs may occupy.
//
// Layout, all little-endian, offsets from the start of the image:
//
//   +-----------------+------------------------------+---------------------------+
//   | header 32 bytes | programCount entries x 128   | ELFs, symbols, strings    |
//   +-----------------+------------------------------+---------------------------+
//
//   Header:   0 magic "CURIOIMG" | 8 version u32 = 1 | 12 programCount u32
//            16 totalSize u32 | 20 reserved, 12 bytes of zero
//
//   Program entry:
//      0 name[16], NUL-padded     16 priority u8   17 flags u8   18 interruptCount u8
//     19 deviceCount u8           20 memoryPages u32   24 stackPages u32   28 heapPages u32
//     32 sendMask u64
//     40 elfOffset u32      44 elfSize u32
//     48 symbolsOffset u32  52 symbolCount u32   56 stringsOffset u32   60 stringsSize u32
//     64 interrupts[8] u16
//     80 devices[2] (base u64, size u64)
//    112 ssrPages u8 (per client, <= SSRWindow.maxPages)
//    113 replyLimit u16, milliseconds (0: none): a client waiting longer than this
//        for the server's reply means the server forgot the request (see Kernel+Restart)
//    115 versionOf u8: 0, or 1 + the index of the program this one is a version of:
//        a live upgrade may replace a running instance of that one with this
//        (Kernel+Upgrade.swift); mkimage gives it that program's authority
//    116 reserved, 12 bytes of zero                                          -> 128 bytes
//
//   flags: bit 0 startsAtBoot, bit 1 mayManage, bit 2 receivesBootArguments,
//          bit 3 restartable (restarted from its pristine image when it faults),
//          bit 4 promisesReplies (every request it holds, it holds to a promised time),
//          bit 5 keepsSSRs (a client restarted when it faults, keeping its SSRs)
//
//   Symbol record: 0 address u64 | 8 nameOffset u32 (into the program's strings) | 12 nameLength u32

import CurioABI

public enum BootImageError: Error, Equatable, Sendable {
    /// The bytes end before the header, the entry table, or the declared total size.
    case truncated
    case badMagic
    /// Not version 1, or the header's reserved bytes are not zero (fields of a
    /// later version this kernel does not know).
    case badVersion
    /// More programs than a sendMask can name.
    case tooManyPrograms
    /// Entry `index` is invalid: a bad name (or one used before), a limit
    /// exceeded, an unknown flag, a region outside the image, unsorted symbols...
    case badProgramEntry(index: Int)
}

/// The numbers that define the format, shared with the host tool that writes it.
public enum BootImageFormat {
    /// "CURIOIMG" read as a little-endian u64.
    public static let magic: UInt64 = 0x474D_494F_4952_5543
    public static let version: UInt32 = 1
    public static let headerSize = 32
    public static let programEntrySize = 128
    public static let symbolRecordSize = 16
    public static let maxPrograms = 64
    public static let maxPriority: UInt8 = 7
    public static let maxInterrupts = 8
    public static let maxDevices = 2
    /// Device ranges are mapped into user space, so they must be whole pages.
    public static let pageSize: UInt64 = 4096

    public enum HeaderField {
        public static let magic = 0
        public static let version = 8
        public static let programCount = 12
        public static let totalSize = 16
        public static let reserved = 20
        public static let reservedSize = 12
    }

    public enum ProgramField {
        public static let name = 0
        public static let nameSize = 16
        public static let priority = 16
        public static let flags = 17
        public static let interruptCount = 18
        public static let deviceCount = 19
        public static let memoryPages = 20
        public static let stackPages = 24
        public static let heapPages = 28
        public static let sendMask = 32
        public static let elfOffset = 40
        public static let elfSize = 44
        public static let symbolsOffset = 48
        public static let symbolCount = 52
        public static let stringsOffset = 56
        public static let stringsSize = 60
        public static let interrupts = 64
        /// One interrupt: a PLIC source number (1...1023) as u16.
        public static let interruptSize = 2
        public static let devices = 80
        /// One device: base u64, size u64.
        public static let deviceSize = 16
        public static let ssrPages = 112
        public static let replyLimit = 113
        public static let versionOf = 115
        public static let reserved = 116
        public static let reservedSize = 12
    }

    public enum ProgramFlag {
        public static let startsAtBoot: UInt8 = 1 << 0
        public static let mayManage: UInt8 = 1 << 1
        public static let receivesBootArguments: UInt8 = 1 << 2
        public static let restartable: UInt8 = 1 << 3
        public static let promisesReplies: UInt8 = 1 << 4
        public static let keepsSSRs: UInt8 = 1 << 5
        static let all: UInt8 = startsAtBoot | mayManage | receivesBootArguments | restartable | promisesReplies
            | keepsSSRs
    }

    public enum SymbolField {
        public static let address = 0
        public static let nameOffset = 8
        public static let nameLength = 12
    }
}

/// A program's name, stored inline: 1 to 15 bytes of [a-z0-9-_].
public struct ProgramName: Equatable, Sendable {
    public static let maxLength = SyscallLimits.maxNameBytes

    /// The name's bytes, zero beyond `count`, so equal names have equal storage.
    private var storage: (UInt64, UInt64)
    public let count: Int

    /// Nil if `bytes` is empty, longer than `maxLength`, or has a byte outside [a-z0-9-_].
    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= 1, bytes.count <= Self.maxLength else { return nil }
        for byte in bytes where !Self.isAllowed(byte) {
            return nil
        }
        var storage: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) }
        self.storage = storage
        count = bytes.count
    }

    /// Reads the NUL-padded name field of a program entry: the name, then only zeros.
    init?(paddedField field: UnsafeRawBufferPointer) {
        let length = field.firstIndex(of: 0) ?? field.count
        for byte in field[length...] where byte != 0 {
            return nil
        }
        self.init(UnsafeRawBufferPointer(rebasing: field[0..<length]))
    }

    public func withBytes<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        withUnsafeBytes(of: storage) { body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }

    public static func == (left: ProgramName, right: ProgramName) -> Bool {
        left.storage.0 == right.storage.0 && left.storage.1 == right.storage.1
    }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "_"):
            true
        default:
            false
        }
    }
}

/// What a program entry grants; decoded from a validated entry.
public struct ProgramDescriptor: Sendable {
    public var name: ProgramName
    /// 0 is the most urgent, `BootImageFormat.maxPriority` the least.
    public var priority: UInt8
    public var startsAtBoot: Bool
    /// May spawn and kill programs and power the machine off.
    public var mayManage: Bool
    /// Gets the kernel command line as its argument string.
    public var receivesBootArguments: Bool
    /// Restarted from its pristine image when it faults (a server), not just stopped.
    public var restartable: Bool
    /// Holds no request without promising its reply by a time (`promiseReply`).
    public var promisesReplies: Bool
    /// A client restarted from its pristine image when it faults, keeping its SSRs
    /// (Kernel+ClientRestart.swift).
    public var keepsSSRs: Bool
    /// Pages of server state each client gets (0: keeps no per-client state).
    public var ssrPages: Int
    /// How long (ms) a client may wait for this server's reply before the server is
    /// deemed to have forgotten the request (0: no limit).
    public var replyLimitMilliseconds: Int
    /// The program this one is a version of (a live upgrade's target), if any.
    public var versionOf: Int?
    /// The budget for everything the process owns: image, stack, heap, page tables.
    public var memoryPages: Int
    public var stackPages: Int
    public var heapPages: Int
    /// Bit i set: may send to program i.
    public var sendMask: UInt64
    /// Its interrupts and device windows (the kernel keeps a copy per process).
    public var hardware: ProgramHardware

    public var interruptCount: Int { hardware.interruptCount }
    public func interrupt(_ index: Int) -> UInt32 { hardware.interrupt(index) }
    public var deviceCount: Int { hardware.deviceCount }
    public func device(_ index: Int) -> (base: UInt64, size: UInt64) { hardware.device(index) }

    /// Decodes and checks everything an entry says about the program itself;
    /// nil if any of it is invalid. Regions are checked by `ProgramRegions`.
    init?(entry: FixedRecord, programCount: Int) {
        typealias Field = BootImageFormat.ProgramField
        guard let name = ProgramName(paddedField: entry.slice(at: Field.name, size: Field.nameSize)) else {
            return nil
        }
        let priority = entry.byte(at: Field.priority)
        let flags = entry.byte(at: Field.flags)
        let interruptCount = Int(entry.byte(at: Field.interruptCount))
        let deviceCount = Int(entry.byte(at: Field.deviceCount))
        let memoryPages = entry.littleEndian(UInt32.self, at: Field.memoryPages)
        let stackPages = entry.littleEndian(UInt32.self, at: Field.stackPages)
        let heapPages = entry.littleEndian(UInt32.self, at: Field.heapPages)
        let sendMask = entry.littleEndian(UInt64.self, at: Field.sendMask)
        let ssrPages = Int(entry.byte(at: Field.ssrPages))
        let replyLimit = Int(entry.byte(at: Field.replyLimit)) | Int(entry.byte(at: Field.replyLimit + 1)) << 8
        let versionOf = Int(entry.byte(at: Field.versionOf))
        guard priority <= BootImageFormat.maxPriority,
              versionOf <= programCount,
              ssrPages <= SSRWindow.maxPages,
              flags & ~BootImageFormat.ProgramFlag.all == 0,
              interruptCount <= BootImageFormat.maxInterrupts,
              deviceCount <= BootImageFormat.maxDevices,
              UInt64(stackPages) + UInt64(heapPages) <= UInt64(memoryPages),
              sendMask >> programCount == 0,  // a smart shift: by 64 it gives 0
              isZero(entry.slice(at: Field.reserved, size: Field.reservedSize))
        else { return nil }

        // Unused slots must be zero; used interrupts are PLIC sources (never 0)
        // and used devices are non-empty, page-aligned, and do not wrap around.
        var interrupts: (UInt64, UInt64) = (0, 0)
        for slot in 0..<BootImageFormat.maxInterrupts {
            let source = entry.littleEndian(UInt16.self, at: Field.interrupts + slot * Field.interruptSize)
            guard (slot < interruptCount) == (source != 0) else { return nil }
            let field = UInt64(source) << UInt64(16 * (slot % 4))
            if slot < 4 { interrupts.0 |= field } else { interrupts.1 |= field }
        }
        var devices: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        for slot in 0..<BootImageFormat.maxDevices {
            let base = entry.littleEndian(UInt64.self, at: Field.devices + slot * Field.deviceSize)
            let size = entry.littleEndian(UInt64.self, at: Field.devices + slot * Field.deviceSize + 8)
            if slot < deviceCount {
                guard size > 0, base % BootImageFormat.pageSize == 0, size % BootImageFormat.pageSize == 0,
                      size <= UInt64.max - base
                else { return nil }
            } else {
                guard base == 0 && size == 0 else { return nil }
            }
            if slot == 0 { devices.0 = base; devices.1 = size } else { devices.2 = base; devices.3 = size }
        }

        self.name = name
        self.priority = priority
        startsAtBoot = flags & BootImageFormat.ProgramFlag.startsAtBoot != 0
        mayManage = flags & BootImageFormat.ProgramFlag.mayManage != 0
        receivesBootArguments = flags & BootImageFormat.ProgramFlag.receivesBootArguments != 0
        restartable = flags & BootImageFormat.ProgramFlag.restartable != 0
        promisesReplies = flags & BootImageFormat.ProgramFlag.promisesReplies != 0
        keepsSSRs = flags & BootImageFormat.ProgramFlag.keepsSSRs != 0
        self.ssrPages = ssrPages
        replyLimitMilliseconds = replyLimit
        self.versionOf = versionOf == 0 ? nil : versionOf - 1
        self.memoryPages = Int(memoryPages)
        self.stackPages = Int(stackPages)
        self.heapPages = Int(heapPages)
        self.sendMask = sendMask
        hardware = ProgramHardware(interruptCount: interruptCount, interrupts: interrupts,
                                   deviceCount: deviceCount, devices: devices)
    }
}

/// A program's interrupt sources and device windows, from its validated entry: what
/// the kernel consults on every interrupt and device register write, so it is kept
/// decoded in each process's record (decoding a program entry costs about 1,500
/// instructions).
public struct ProgramHardware: Sendable {
    public private(set) var interruptCount = 0
    public private(set) var deviceCount = 0
    /// The sources, four 16-bit fields to a word.
    private var interrupts: (UInt64, UInt64) = (0, 0)
    private var devices: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    public init() {}

    init(interruptCount: Int, interrupts: (UInt64, UInt64), deviceCount: Int,
         devices: (UInt64, UInt64, UInt64, UInt64)) {
        self.interruptCount = interruptCount
        self.interrupts = interrupts
        self.deviceCount = deviceCount
        self.devices = devices
    }

    public func interrupt(_ index: Int) -> UInt32 {
        precondition(index >= 0 && index < interruptCount, "interrupt index out of range")
        let word = index < 4 ? interrupts.0 : interrupts.1
        return UInt32(truncatingIfNeeded: word >> UInt64(16 * (index % 4)) & 0xFFFF)
    }

    /// Which of the program's interrupts `source` is, if any.
    public func index(ofInterrupt source: UInt32) -> Int? {
        for index in 0..<interruptCount where interrupt(index) == source { return index }
        return nil
    }

    public func device(_ index: Int) -> (base: UInt64, size: UInt64) {
        precondition(index >= 0 && index < deviceCount, "device index out of range")
        return index == 0 ? (devices.0, devices.1) : (devices.2, devices.3)
    }
}

public struct BootImage {
    public let programCount: Int
    /// Exactly `totalSize` bytes.
    private let image: UntrustedBytes

    public init(_ bytes: UnsafeRawBufferPointer) throws(BootImageError) {
        typealias Field = BootImageFormat.HeaderField
        guard let header = UntrustedBytes(bytes).record(at: 0, size: BootImageFormat.headerSize) else {
            throw .truncated
        }
        guard header.littleEndian(UInt64.self, at: Field.magic) == BootImageFormat.magic else { throw .badMagic }
        guard header.littleEndian(UInt32.self, at: Field.version) == BootImageFormat.version,
              isZero(header.slice(at: Field.reserved, size: Field.reservedSize))
        else { throw .badVersion }

        let count = Int(header.littleEndian(UInt32.self, at: Field.programCount))
        guard count <= BootImageFormat.maxPrograms else { throw .tooManyPrograms }
        let totalSize = Int(header.littleEndian(UInt32.self, at: Field.totalSize))
        let tableEnd = BootImageFormat.headerSize + count * BootImageFormat.programEntrySize
        guard totalSize <= bytes.count, tableEnd <= totalSize else { throw .truncated }
        image = UntrustedBytes(UnsafeRawBufferPointer(rebasing: bytes[0..<totalSize]))
        programCount = count

        for index in 0..<count {
            let entry = Self.entry(index, in: image)
            guard let program = ProgramDescriptor(entry: entry, programCount: count),
                  let regions = ProgramRegions(entry: entry, image: image, tableEnd: tableEnd),
                  regions.symbolsAreValid()
            else { throw .badProgramEntry(index: index) }
            for earlier in 0..<index where ProgramDescriptor(entry: Self.entry(earlier, in: image),
                                                               programCount: count)?.name == program.name {
                throw .badProgramEntry(index: index)
            }
        }
    }

    public func program(_ index: Int) -> ProgramDescriptor {
        guard let program = ProgramDescriptor(entry: entry(index), programCount: programCount) else {
            fatalError("boot image entry changed after validation")
        }
        return program
    }

    /// The program's ELF file, to be checked and loaded by `ELFImage`.
    public func elf(of index: Int) -> UnsafeRawBufferPointer {
        regions(of: index).elf
    }

    /// The index of the program called `name`, if there is one.
    public func index(of name: UnsafeRawBufferPointer) -> Int? {
        guard let wanted = ProgramName(name) else { return nil }
        for index in 0..<programCount where program(index).name == wanted {
            return index
        }
        return nil
    }

    /// The program's symbol with the greatest address not above `address`, and
    /// how far past it `address` is; nil if every symbol lies above it (or there are none).
    public func symbolize(program index: Int, address: UInt64) -> (name: UnsafeRawBufferPointer, offset: UInt64)? {
        let regions = regions(of: index)
        // Invariant: symbols below `low` are <= address, symbols from `high` on are above it.
        var low = 0
        var high = regions.symbolCount
        while low < high {
            let middle = low + (high - low) / 2
            if regions.symbol(middle).address <= address {
                low = middle + 1
            } else {
                high = middle
            }
        }
        guard low > 0 else { return nil }
        let symbol = regions.symbol(low - 1)
        return (regions.name(of: symbol), address - symbol.address)
    }

    private func entry(_ index: Int) -> FixedRecord {
        precondition(index >= 0 && index < programCount, "program index out of range")
        return Self.entry(index, in: image)
    }

    private static func entry(_ index: Int, in image: UntrustedBytes) -> FixedRecord {
        let start = BootImageFormat.headerSize + index * BootImageFormat.programEntrySize
        return FixedRecord(UnsafeRawBufferPointer(rebasing: image.buffer[start..<start + BootImageFormat.programEntrySize]))
    }

    private func regions(of index: Int) -> ProgramRegions {
        let tableEnd = BootImageFormat.headerSize + programCount * BootImageFormat.programEntrySize
        guard let regions = ProgramRegions(entry: entry(index), image: image, tableEnd: tableEnd) else {
            fatalError("boot image entry changed after validation")
        }
        return regions
    }
}

/// The parts of the image that belong to one program. Constructing it checks
/// that each lies after the entry table and inside the image; `symbolsAreValid`
/// checks the symbol table's contents, once, when the image is.
private struct ProgramRegions {
    let elf: UnsafeRawBufferPointer
    let symbols: UnsafeRawBufferPointer
    let strings: UnsafeRawBufferPointer

    var symbolCount: Int { symbols.count / BootImageFormat.symbolRecordSize }

    init?(entry: FixedRecord, image: UntrustedBytes, tableEnd: Int) {
        typealias Field = BootImageFormat.ProgramField
        func region(offsetField: Int, sizeField: Int, unit: Int) -> UnsafeRawBufferPointer? {
            let offset = entry.littleEndian(UInt32.self, at: offsetField)
            let size = UInt64(entry.littleEndian(UInt32.self, at: sizeField)) * UInt64(unit)
            guard offset >= tableEnd else { return nil }
            return image.slice(offset: UInt64(offset), size: size)
        }
        guard let elf = region(offsetField: Field.elfOffset, sizeField: Field.elfSize, unit: 1),
              let symbols = region(offsetField: Field.symbolsOffset, sizeField: Field.symbolCount,
                                   unit: BootImageFormat.symbolRecordSize),
              let strings = region(offsetField: Field.stringsOffset, sizeField: Field.stringsSize, unit: 1)
        else { return nil }
        self.elf = elf
        self.symbols = symbols
        self.strings = strings
    }

    /// Whether the symbols are sorted by address and every name lies inside the strings.
    func symbolsAreValid() -> Bool {
        let stringTable = UntrustedBytes(strings)
        var previousAddress: UInt64 = 0
        for index in 0..<symbolCount {
            let symbol = self.symbol(index)
            guard symbol.address >= previousAddress,
                  stringTable.contains(offset: UInt64(symbol.nameOffset), size: UInt64(symbol.nameLength))
            else { return false }
            previousAddress = symbol.address
        }
        return true
    }

    func symbol(_ index: Int) -> SymbolRecord {
        let start = index * BootImageFormat.symbolRecordSize
        return SymbolRecord(FixedRecord(UnsafeRawBufferPointer(
            rebasing: symbols[start..<start + BootImageFormat.symbolRecordSize])))
    }

    /// The symbol's name; `symbolsAreValid` checked its range.
    func name(of symbol: SymbolRecord) -> UnsafeRawBufferPointer {
        let start = Int(symbol.nameOffset)
        return UnsafeRawBufferPointer(rebasing: strings[start..<start + Int(symbol.nameLength)])
    }
}

private struct SymbolRecord {
    let address: UInt64
    let nameOffset: UInt32
    let nameLength: UInt32

    init(_ record: FixedRecord) {
        typealias Field = BootImageFormat.SymbolField
        address = record.littleEndian(UInt64.self, at: Field.address)
        nameOffset = record.littleEndian(UInt32.self, at: Field.nameOffset)
        nameLength = record.littleEndian(UInt32.self, at: Field.nameLength)
    }
}

private func isZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
    for byte in bytes where byte != 0 {
        return false
    }
    return true
}
