// DeviceTree: the two facts the kernel takes from the firmware's device tree.
//
// OpenSBI enters the kernel with a pointer to a flattened device tree (a "DTB")
// in a1. It describes the whole machine, but Curio's kernel wants only two
// things from it: how much RAM there is and where it starts (the first `reg`
// of the first `/memory@...` node), and the kernel command line
// (`/chosen/bootargs`, from QEMU's `-append`), which the shell receives as its
// argument string. Devices are not discovered here: the system description
// assigns them to servers by address.
//
// The blob is the firmware's, and we trust it no more than we must. The
// pointer constructor reads only the first eight bytes (magic and total size)
// before it knows how far the blob extends, refuses anything over 1 MiB, and
// hands the rest to the buffer constructor, which checks the header's block
// offsets and sizes against the total size and then walks the whole structure
// block once. The walk checks that every token fits in the block, that nodes
// nest properly under a single root, that properties come before subnodes (as
// the specification requires, and as the `#address-cells` lookup relies on),
// and that every property name lies in the strings block. Anything else is
// `malformed`; nothing is read out of bounds and nothing traps.
//
// The two answers are collected during that walk and stored, so the getters
// cost nothing and the blob is never parsed twice. They point into the blob,
// which therefore must stay where it is; the kernel never frees or moves it.
//
// Layout (everything big-endian, see the Devicetree Specification, ch. 5):
//
//    0 magic d00dfeed | 4 totalsize | 8 off_dt_struct | 12 off_dt_strings
//   16 off_mem_rsvmap | 20 version  | 24 last_comp_version
//   28 boot_cpuid_phys | 32 size_dt_strings | 36 size_dt_struct     -> 40 bytes
//
//   +--------+--------------------+------------------------+-----------------+
//   | header | memory reservation | structure block        | strings block   |
//   |        | (u64 addr, u64 size| (tokens, 4-aligned)    | (NUL-terminated |
//   |        |  ... 0, 0)         |                        |  property names)|
//   +--------+--------------------+------------------------+-----------------+
//
// Structure block tokens, each a u32, 4-byte aligned:
//
//   FDT_BEGIN_NODE (1)  name, NUL-terminated, padded to 4
//   FDT_END_NODE   (2)
//   FDT_PROP       (3)  u32 len | u32 nameoff (into strings) | value[len], padded to 4
//   FDT_NOP        (4)
//   FDT_END        (9)  last token

public enum DeviceTreeError: Error, Equatable, Sendable {
    case badMagic
    /// Older than version 17, or not backward compatible with it.
    case badVersion
    /// The bytes end before the header, or before the total size it declares.
    case truncated
    /// Block offsets, sizes or the structure itself do not make sense.
    case malformed
}

public struct DeviceTree {
    /// The largest blob accepted through a bare pointer; QEMU's is about 4 KiB.
    public static let maxSize = 1 << 20

    /// `/chosen/bootargs` up to its terminating NUL; nil if there is none.
    public let bootArguments: UnsafeRawBufferPointer?
    /// The first (base, size) of the first `/memory@...` node's `reg`.
    public let memory: (base: UInt64, size: UInt64)?

    /// Reads a blob of unknown length: its size comes from its own header.
    public init(_ blob: UnsafeRawPointer) throws(DeviceTreeError) {
        // Only magic and totalsize may be read before the size is known.
        let prefix = FixedRecord(UnsafeRawBufferPointer(start: blob, count: Header.totalSize + 4))
        guard prefix.bigEndian(UInt32.self, at: Header.magic) == Header.expectedMagic else { throw .badMagic }
        let totalSize = Int(prefix.bigEndian(UInt32.self, at: Header.totalSize))
        guard totalSize >= Header.size, totalSize <= Self.maxSize else { throw .malformed }
        try self.init(UnsafeRawBufferPointer(start: blob, count: totalSize))
    }

    /// Reads the blob in `bytes`, which may be longer than the tree (a padded file).
    public init(_ bytes: UnsafeRawBufferPointer) throws(DeviceTreeError) {
        guard let header = UntrustedBytes(bytes).record(at: 0, size: Header.size) else { throw .truncated }
        guard header.bigEndian(UInt32.self, at: Header.magic) == Header.expectedMagic else { throw .badMagic }
        guard header.bigEndian(UInt32.self, at: Header.version) >= Header.understoodVersion,
              header.bigEndian(UInt32.self, at: Header.lastCompatibleVersion) <= Header.understoodVersion
        else { throw .badVersion }

        let totalSize = Int(header.bigEndian(UInt32.self, at: Header.totalSize))
        guard totalSize >= Header.size else { throw .malformed }
        guard totalSize <= bytes.count else { throw .truncated }
        let tree = UntrustedBytes(UnsafeRawBufferPointer(rebasing: bytes[0..<totalSize]))

        let structureOffset = header.bigEndian(UInt32.self, at: Header.structureOffset)
        let stringsOffset = header.bigEndian(UInt32.self, at: Header.stringsOffset)
        let reservationsOffset = header.bigEndian(UInt32.self, at: Header.reservationsOffset)
        guard structureOffset >= Header.size, structureOffset % 4 == 0,
              stringsOffset >= Header.size,
              reservationsOffset >= Header.size, reservationsOffset % 8 == 0,
              tree.contains(offset: UInt64(reservationsOffset), size: Header.reservationEntrySize),
              let structure = tree.slice(offset: UInt64(structureOffset),
                                         size: UInt64(header.bigEndian(UInt32.self, at: Header.structureSize))),
              let strings = tree.slice(offset: UInt64(stringsOffset),
                                       size: UInt64(header.bigEndian(UInt32.self, at: Header.stringsSize)))
        else { throw .malformed }

        var walk = StructureWalk(structure: UntrustedBytes(structure), strings: UntrustedBytes(strings))
        try walk.run()
        bootArguments = walk.bootArguments
        memory = walk.memory
    }
}

private enum Header {
    static let size = 40
    static let magic = 0
    static let totalSize = 4
    static let structureOffset = 8
    static let stringsOffset = 12
    static let reservationsOffset = 16
    static let version = 20
    static let lastCompatibleVersion = 24
    static let stringsSize = 32
    static let structureSize = 36

    static let expectedMagic: UInt32 = 0xD00D_FEED
    /// Version 17 added size_dt_struct, which the walk needs.
    static let understoodVersion: UInt32 = 17
    /// The reservation list ends with an all-zero (address, size) pair.
    static let reservationEntrySize: UInt64 = 16
}

/// One pass over the structure block, validating it and picking out the answers.
private struct StructureWalk {
    private enum Token {
        static let beginNode: UInt32 = 1
        static let endNode: UInt32 = 2
        static let property: UInt32 = 3
        static let nop: UInt32 = 4
        static let end: UInt32 = 9
    }

    /// The node whose properties are being read, as far as the walk cares.
    private enum Node { case root, chosen, memory, other }

    let structure: UntrustedBytes
    let strings: UntrustedBytes
    private var offset = 0

    private(set) var bootArguments: UnsafeRawBufferPointer?
    private(set) var memory: (base: UInt64, size: UInt64)?

    /// The specification's defaults when the root does not say.
    private var addressCells: UInt32 = 2
    private var sizeCells: UInt32 = 1

    init(structure: UntrustedBytes, strings: UntrustedBytes) {
        self.structure = structure
        self.strings = strings
    }

    mutating func run() throws(DeviceTreeError) {
        var depth = 0
        var node = Node.other
        var sawRoot = false
        var sawMemoryNode = false
        // A property is legal only straight after its node's name or another
        // property: once a subnode has begun (or ended), the parent's are over.
        var propertiesAllowed = false

        while true {
            switch try word() {
            case Token.beginNode:
                let name = try nodeName()
                switch depth {
                case 0:
                    guard !sawRoot else { throw .malformed }
                    sawRoot = true
                    node = .root
                case 1:
                    if matches(name, "chosen") {
                        node = .chosen
                    } else if !sawMemoryNode && (matches(name, "memory") || hasPrefix(name, "memory@")) {
                        sawMemoryNode = true
                        node = .memory
                    } else {
                        node = .other
                    }
                default:
                    node = .other
                }
                depth += 1
                propertiesAllowed = true
            case Token.endNode:
                guard depth > 0 else { throw .malformed }
                depth -= 1
                node = depth == 1 ? .root : .other
                propertiesAllowed = false
            case Token.property:
                guard propertiesAllowed else { throw .malformed }
                let length = try word()
                let nameOffset = try word()
                let value = try propertyValue(length: length)
                let name = try propertyName(at: nameOffset)
                try record(property: name, value: value, of: node)
            case Token.nop:
                continue
            case Token.end:
                guard sawRoot && depth == 0 else { throw .malformed }
                return
            default:
                throw .malformed
            }
        }
    }

    private mutating func record(property name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer,
                                 of node: Node) throws(DeviceTreeError) {
        switch node {
        case .root:
            if matches(name, "#address-cells") {
                addressCells = try singleCell(value)
            } else if matches(name, "#size-cells") {
                sizeCells = try singleCell(value)
            }
        case .chosen:
            if matches(name, "bootargs") && bootArguments == nil {
                bootArguments = upToNUL(value)
            }
        case .memory:
            if matches(name, "reg") && memory == nil {
                memory = try firstRegion(value)
            }
        case .other:
            break
        }
    }

    /// The first (address, size) pair of a `reg` value, `addressCells` and
    /// `sizeCells` u32 cells respectively, most significant first.
    private func firstRegion(_ value: UnsafeRawBufferPointer) throws(DeviceTreeError) -> (base: UInt64, size: UInt64) {
        guard (1...2).contains(addressCells), (1...2).contains(sizeCells),
              value.count >= Int(addressCells + sizeCells) * 4
        else { throw .malformed }
        let cells = FixedRecord(value)
        func number(at firstCell: Int, cellCount: UInt32) -> UInt64 {
            var result: UInt64 = 0
            for cell in 0..<Int(cellCount) {
                result = result << 32 | UInt64(cells.bigEndian(UInt32.self, at: (firstCell + cell) * 4))
            }
            return result
        }
        return (number(at: 0, cellCount: addressCells), number(at: Int(addressCells), cellCount: sizeCells))
    }

    private func singleCell(_ value: UnsafeRawBufferPointer) throws(DeviceTreeError) -> UInt32 {
        guard value.count == 4 else { throw .malformed }
        return FixedRecord(value).bigEndian(UInt32.self, at: 0)
    }

    private mutating func word() throws(DeviceTreeError) -> UInt32 {
        guard let value = structure.bigEndian(UInt32.self, at: offset) else { throw .malformed }
        offset += 4
        return value
    }

    /// A NUL-terminated node name (without the NUL); moves past its padding.
    private mutating func nodeName() throws(DeviceTreeError) -> UnsafeRawBufferPointer {
        guard offset <= structure.count else { throw .malformed }
        let rest = UnsafeRawBufferPointer(rebasing: structure.buffer[offset...])
        guard let length = rest.firstIndex(of: 0) else { throw .malformed }
        offset = alignedToWord(offset + length + 1)
        return UnsafeRawBufferPointer(rebasing: rest[0..<length])
    }

    private mutating func propertyValue(length: UInt32) throws(DeviceTreeError) -> UnsafeRawBufferPointer {
        guard let value = structure.slice(offset: UInt64(offset), size: UInt64(length)) else { throw .malformed }
        offset = alignedToWord(offset + Int(length))
        return value
    }

    private func propertyName(at nameOffset: UInt32) throws(DeviceTreeError) -> UnsafeRawBufferPointer {
        guard Int(nameOffset) < strings.count else { throw .malformed }
        let rest = UnsafeRawBufferPointer(rebasing: strings.buffer[Int(nameOffset)...])
        guard let length = rest.firstIndex(of: 0) else { throw .malformed }
        return UnsafeRawBufferPointer(rebasing: rest[0..<length])
    }

    /// Blocks are smaller than 4 GiB (their sizes are u32), so rounding up cannot
    /// overflow an Int; a result past the end makes the next read fail instead.
    private func alignedToWord(_ offset: Int) -> Int {
        (offset + 3) & ~3
    }
}

private func upToNUL(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.firstIndex(of: 0) ?? bytes.count)])
}

private func matches(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
    literal.withUTF8Buffer { expected in
        expected.count == bytes.count && hasPrefix(bytes, literal)
    }
}

private func hasPrefix(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
    literal.withUTF8Buffer { expected in
        guard expected.count <= bytes.count else { return false }
        for index in 0..<expected.count where bytes[index] != expected[index] {
            return false
        }
        return true
    }
}
