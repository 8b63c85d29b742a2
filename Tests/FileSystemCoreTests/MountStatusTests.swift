// The mount status as the shell receives it: every feature bit named as e2fsprogs
// names it, the policy of what is refused and what only keeps Curio from writing,
// and the `mountStatus` reply's round trip and its checks.

import FileSystemCore
import Testing

struct MountStatusTests {
    /// mkfs.ext4's default features (e2fsprogs 1.47, mke2fs.conf): has_journal ext_attr
    /// resize_inode dir_index filetype extent 64bit flex_bg sparse_super large_file
    /// huge_file dir_nlink extra_isize metadata_csum.
    static let ext4Defaults = Ext2Features(compatible: 0x0004 | 0x0008 | 0x0010 | 0x0020,
                                           incompatible: 0x0002 | 0x0040 | 0x0080 | 0x0200,
                                           readOnlyCompatible: 0x0001 | 0x0002 | 0x0008 | 0x0020 | 0x0040 | 0x0400)

    @Test func theDefaultsOfMkfsExt4AreRefusedAndEveryOneInTheWayIsNamed() {
        let features = Self.ext4Defaults
        #expect(features.preventingMount == Ext2Features(incompatible: 0x0040 | 0x0080 | 0x0200))
        #expect(features.preventingWrites == Ext2Features(readOnlyCompatible: 0x0008 | 0x0020 | 0x0040 | 0x0400))
        let inTheWay = features.preventingMount | features.preventingWrites
        #expect(inTheWay.names == ["extent", "64bit", "flex_bg", "huge_file", "dir_nlink", "extra_isize", "metadata_csum"])
        #expect(MountStatus.notMounted(.unsupportedFeatures(inTheWay)).explanation
                == "no filesystem: the disk needs ext4 features Curio does not support: extent, 64bit, flex_bg,"
                + " huge_file, dir_nlink, extra_isize, metadata_csum (" + MountFailure.remedy + ")")
    }

    @Test func aJournalAwaitingRecoveryIsSentToE2fsckNotToMke2fs() {
        let unreplayed = Ext2Features(compatible: 0x0004, incompatible: 0x0002 | 0x0004)
        let explanation = MountFailure.unsupportedFeatures(unreplayed.preventingMount).explanation
        #expect(explanation.contains("needs_recovery") && explanation.contains("e2fsck -fy"))
        #expect(!explanation.contains("mke2fs"))
        let alsoExtents = MountFailure.unsupportedFeatures(Ext2Features(incompatible: 0x0004 | 0x0040)).explanation
        #expect(alsoExtents.contains("needs_recovery, extent") && alsoExtents.contains("mke2fs"))
    }

    @Test func whatMke2fsMakesForExt2IsWritable() {
        let ext2 = Ext2Features(compatible: 0x0008 | 0x0010 | 0x0020, incompatible: 0x0002,
                                readOnlyCompatible: 0x0001 | 0x0002)
        #expect(ext2.preventingMount.isEmpty && ext2.preventingWrites.isEmpty)
    }

    @Test func everyBitHasANameAndUnknownOnesAreShownAsDumpe2fsShowsThem() {
        #expect(Ext2Features(compatible: 1 << 12).names == ["orphan_file"])
        #expect(Ext2Features(incompatible: 1 << 17).names == ["casefold"])
        #expect(Ext2Features(readOnlyCompatible: 1 << 16).names == ["orphan_present"])
        #expect(Ext2Features(incompatible: 1 << 5 | 1 << 31).names == ["FEATURE_I5", "FEATURE_I31"])
        #expect(Ext2Features(compatible: 1 << 20, readOnlyCompatible: 1 << 30).names == ["FEATURE_R30", "FEATURE_C20"])
        let all = Ext2Features(compatible: .max, incompatible: .max, readOnlyCompatible: .max).names
        #expect(all.count == 96 && Set(all).count == 96, "no name is used twice")
    }

    @Test func everyStatusSurvivesTheWire() throws {
        let statuses: [MountStatus] = [
            .writable, .readOnly(.configured), .readOnly(.deviceReadOnly),
            .readOnly(.features(Ext2Features(compatible: 1 << 9, readOnlyCompatible: 0x400))),
            .notMounted(.noDisk), .notMounted(.unreadable), .notMounted(.notExt2(magic: 0)),
            .notMounted(.notExt2(magic: 0xFFFF)), .notMounted(.unsupportedRevision(UInt32.max)),
            .notMounted(.unsupportedBlockSize(logBlockSize: 30)),
            .notMounted(.unsupportedFeatures(Self.ext4Defaults.preventingMount | Self.ext4Defaults.preventingWrites)),
            .notMounted(.corrupt),
        ]
        var payload = [UInt8](repeating: 0xAA, count: MountStatus.payloadBytes)
        for status in statuses {
            let encoded = payload.withUnsafeMutableBytes { status.encode(into: $0) }
            #expect(encoded.length == MountStatus.payloadBytes)
            let decoded = try payload.withUnsafeBytes { try MountStatus.decode(words: encoded.words, payload: $0) }
            #expect(decoded == status)
        }
    }

    @Test func aReplyTheServerWouldNotSendIsAnIOError() {
        let zeros = [UInt8](repeating: 0, count: MountStatus.payloadBytes)
        func decode(_ words: (UInt, UInt), _ payload: [UInt8] = zeros) throws -> MountStatus {
            try payload.withUnsafeBytes { try MountStatus.decode(words: words, payload: $0) }
        }
        #expect(throws: FileSystemError.ioError) { try decode((3, 0)) }                 // no such state
        #expect(throws: FileSystemError.ioError) { try decode((2 | 9 << 8, 0)) }        // no such failure
        #expect(throws: FileSystemError.ioError) { try decode((1 | 4 << 8, 0)) }        // no such read-only reason
        #expect(throws: FileSystemError.ioError) { try decode((0 | 1 << 8, 0)) }        // writable with a reason
        #expect(throws: FileSystemError.ioError) { try decode((2 | 1 << 8, 5)) }        // noDisk with a detail
        #expect(throws: FileSystemError.ioError) { try decode((2 | 3 << 8, 0x1_0000)) } // a magic past 16 bits
        #expect(throws: FileSystemError.ioError) { try decode((2 | 1 << 16, 0)) }       // bits past the reason
        #expect(throws: FileSystemError.ioError) { try decode((2 | 1 << 8, 0), [1] + zeros.dropFirst()) } // features with noDisk
        #expect(throws: FileSystemError.ioError) { try decode((0, 0), []) }             // no payload
        #expect(throws: Never.self) { try decode((2 | 7 << 8, 0)) }
    }
}
