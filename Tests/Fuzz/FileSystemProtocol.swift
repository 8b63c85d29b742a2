// Fuzz target `fs-protocol`: the filesystem's wire protocol, both ways.
//
// The input is one message: operation (u16), word 0 and word 1 (u64 each), then
// the payload (the rest, as many bytes as there are); the seeds are a request of
// every operation as the client library encodes it. The server's decoder
// (`FileSystemRequest.decode`) must accept it or answer an error; a request it
// accepts must come back as the very same message from the client's encoder —
// the two sides share one set of rules, so anything the server takes the client
// could have sent.
//
// The same bytes are also read the way a client reads a reply payload from a
// server it does not trust: as a FileStatus, as VolumeStatistics, as a page of
// directory entries holding word 1's low byte of entries, and with both words as a
// MountStatus. Whatever decodes must encode back to the words and bytes it came from.

import FileSystemCore

nonisolated(unsafe) let scratch = UnsafeMutableRawBufferPointer.allocate(
    byteCount: max(FileSystemRequest.scratchBytes, 8192), alignment: 16)

func same(_ left: UnsafeRawBufferPointer, _ right: UnsafeRawBufferPointer) -> Bool {
    left.count == right.count && left.elementsEqual(right)
}

func checkRequest(operation: UInt16, words: (UInt, UInt), payload: UnsafeRawBufferPointer) {
    guard let request = try? FileSystemRequest.decode(operation: operation, words: words, payload: payload) else {
        return
    }
    let message: FileSystemMessage
    do throws(FileSystemError) {
        message = try request.encode(scratch: scratch)
    } catch {
        preconditionFailure("the server accepted a request the client refuses to encode: \(error)")
    }
    precondition(message.operation.rawValue == operation && message.words == words, "the words do not round-trip")
    precondition(same(message.payload, payload), "the payload does not round-trip")
}

func checkReplyRecords(_ payload: UnsafeRawBufferPointer, words: (UInt, UInt), entries: Int) {
    let output = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<4096])
    if let mountStatus = try? MountStatus.decode(words: words, payload: payload) {
        let encoded = mountStatus.encode(into: output)
        precondition(encoded.words == words && same(UnsafeRawBufferPointer(rebasing: output[0..<encoded.length]), payload),
                     "MountStatus does not round-trip")
    }
    if let status = try? FileStatus.decode(payload) {
        let length = status.encode(into: output)
        precondition(same(UnsafeRawBufferPointer(rebasing: output[0..<length]), payload), "FileStatus does not round-trip")
    }
    if let statistics = try? VolumeStatistics.decode(payload) {
        let length = statistics.encode(into: output)
        precondition(same(UnsafeRawBufferPointer(rebasing: output[0..<length]), payload),
                     "VolumeStatistics does not round-trip")
    }
    var reader = DirectoryPageReader(payload, count: entries)
    var writer = DirectoryPageWriter(UnsafeMutableRawBufferPointer(rebasing: scratch[0..<8192]))
    while true {
        let next: DirectoryEntry?
        do throws(FileSystemError) { next = try reader.next() } catch { return }  // a bad page is refused whole
        guard let entry = next else { break }
        let appended: Bool
        do throws(FileSystemError) {
            appended = try writer.append(entry)
        } catch {
            preconditionFailure("a decoded entry cannot be encoded again: \(error)")
        }
        precondition(appended, "a decoded entry does not fit a page as large as the one it came from")
    }
    precondition(writer.count == entries && same(UnsafeRawBufferPointer(rebasing: scratch[0..<writer.length]), payload),
                 "a directory page does not round-trip")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFileSystemProtocol(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let operation = input.integer(UInt16.self)
    let words = (UInt(input.integer(UInt64.self)), UInt(input.integer(UInt64.self)))
    let payload = input.rest()
    checkRequest(operation: operation, words: words, payload: payload)
    if payload.count <= 4096 { checkReplyRecords(payload, words: words, entries: Int(words.1 & 0xFF)) }
    return 0
}
