// mkimage: the command-line front of SystemImage (`mkimage --help`, and `--help` of
// each subcommand, explain every option).
//
//   mkimage [build] --system system.toml --elf-dir DIR --out FILE [--list]
//           [--nm PATH] [--demangle PATH] [--without-ssr NAME,... [--restart-without-ssr]]
//       Checks the system description, reads <module>.elf for every program from
//       DIR with its symbols, and writes the boot image to FILE; --list then prints
//       the program table as read back from the written image, so what is printed is
//       what the kernel will see. --without-ssr builds servers without server state
//       regions: the baseline the benchmarks and the campaigns compare SSRs to.
//
//   mkimage symbolize IMAGE PROGRAM ADDRESS
//       Names the code at ADDRESS in PROGRAM of the boot image, the way the kernel
//       does in a fault report.
//
// Errors go to standard error with the file name and line where there is one, and
// the exit status is 1 (64 for a usage error, ArgumentParser's).

import ArgumentParser
import Foundation
import KernelCore
import SystemImage

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("mkimage: \(message)\n".utf8))
    exit(1)
}

func readFile(_ path: String) -> Data {
    guard let data = FileManager.default.contents(atPath: path) else { fail("cannot read \(path)") }
    return data
}

func parseAddress(_ text: String) -> UInt64? {
    text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
}

func kibibytes(pages: Int) -> String { "\(pages * SystemDescription.kibibytesPerPage)K" }

/// One row per program, columns padded to their widest cell.
func programTable(_ image: BootImage, _ system: SystemDescription) -> String {
    var rows = [["#", "name", "module", "prio", "flags", "memory", "stack", "heap", "sends", "irqs", "devices",
                 "elf bytes"]]
    for index in 0..<image.programCount {
        let program = image.program(index)
        let flags = [(program.startsAtBoot, "start"), (program.mayManage, "manage"),
                     (program.receivesBootArguments, "args")].filter(\.0).map(\.1)
        let sends = (0..<image.programCount).filter { program.sendMask >> UInt64($0) & 1 != 0 }
            .map { system.programs[$0].name }
        let devices = (0..<program.deviceCount).map { slot in
            let device = program.device(slot)
            return "0x\(String(device.base, radix: 16))+0x\(String(device.size, radix: 16))"
        }
        rows.append([
            "\(index)", program.name.withBytes { String(decoding: $0, as: UTF8.self) }, system.programs[index].module,
            "\(program.priority)", flags.isEmpty ? "-" : flags.joined(separator: ","),
            kibibytes(pages: program.memoryPages), kibibytes(pages: program.stackPages),
            kibibytes(pages: program.heapPages), sends.isEmpty ? "-" : sends.joined(separator: ","),
            program.interruptCount == 0 ? "-" : (0..<program.interruptCount).map { "\(program.interrupt($0))" }
                .joined(separator: ","),
            devices.isEmpty ? "-" : devices.joined(separator: ","), "\(image.elf(of: index).count)",
        ])
    }
    let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max()! }
    return rows.map { row in
        zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }
            .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
    }.joined(separator: "\n")
}

func symbolize(imagePath: String, program name: String, address: UInt64) {
    let bytes = readFile(imagePath)
    bytes.withUnsafeBytes { buffer in
        let image: BootImage
        do {
            image = try BootImage(buffer)
        } catch {
            fail("\(imagePath) is not a valid boot image: \(error)")
        }
        guard let program = Array(name.utf8).withUnsafeBytes({ image.index(of: $0) }) else {
            fail("no program '\(name)' in \(imagePath)")
        }
        guard let (symbol, offset) = image.symbolize(program: program, address: address) else {
            fail("no symbol at or below 0x\(String(address, radix: 16)) in '\(name)'")
        }
        print("\(String(decoding: symbol, as: UTF8.self))+0x\(String(offset, radix: 16))")
    }
}

func build(systemPath: String, elfDirectory: String, outputPath: String, list: Bool, tools: SymbolTools,
           withoutSSR: [String], restartWithoutSSR: Bool) {
    let text = String(decoding: readFile(systemPath), as: UTF8.self)
    var system: SystemDescription
    do {
        system = try SystemDescription(parsing: text)
    } catch {
        fail("\(systemPath):\(error.line): \(error.message)")
    }
    for name in withoutSSR {
        guard system.programs.contains(where: { $0.name == name }) else {
            fail("--without-ssr: no program '\(name)' in \(systemPath)")
        }
    }
    // A version of a server has its authority: it goes without SSRs with it.
    for index in system.programs.indices
        where withoutSSR.contains(system.programs[index].name) || withoutSSR.contains(system.programs[index].versionOf ?? "") {
        // The SSRServer runtime then keeps a table of every client's state, an entry per
        // task slot (320), in the server's heap: room for it, from the budget the regions
        // no longer take from the clients. A state fits twice in its region (SSRFormat
        // commits two copies), so an entry takes at most half the region and 160 x ssr
        // KiB always suffice. (16 x ssr did for the timer, whose 320 entries need some 46
        // KiB, but not for net: its 2 KiB states need 645 KiB, and the 128 KiB it was
        // given left its connections 517 KiB short of the SSR build's heap.)
        let tableKiB = 160 * system.programs[index].ssrKiB
        system.programs[index].heapKiB += tableKiB
        system.programs[index].memoryKiB += tableKiB
        system.programs[index].ssrKiB = 0
        system.programs[index].restartable = restartWithoutSSR
    }
    let imageBytes: [UInt8]
    do {
        imageBytes = try ImageWriter.makeImage(system: system, elfDirectory: elfDirectory, tools: tools)
    } catch {
        fail(error.description)
    }
    do {
        try Data(imageBytes).write(to: URL(fileURLWithPath: outputPath), options: .atomic)
    } catch {
        fail("cannot write \(outputPath): \(error.localizedDescription)")
    }
    guard list else { return }
    imageBytes.withUnsafeBytes { buffer in
        do {
            print(programTable(try BootImage(buffer), system))
        } catch {
            fail("the written image does not read back: \(error)")
        }
    }
}

@main
struct MakeImage: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mkimage",
        abstract: "Pack Curio's programs into the boot image the kernel carries, or read one back.",
        subcommands: [Build.self, Symbolize.self],
        defaultSubcommand: Build.self)
}

struct Build: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a system description and write the boot image of its programs.",
        discussion: """
            Every program's ELF file is read with its symbols (for fault reports), checked \
            as the kernel will load it, and packed with the program table the kernel enforces.
            """)

    @Option(help: "The system description (system.toml).")
    var system: String

    @Option(name: .customLong("elf-dir"), help: "The directory holding <module>.elf for every program.")
    var elfDirectory: String

    @Option(name: .customLong("out"), help: "Where the boot image is written.")
    var output: String

    @Flag(help: "Print the program table, as read back from the written image.")
    var list = false

    @Option(help: "The nm that lists each ELF file's symbols.")
    var nm = SymbolTools().nm

    @Option(help: "The demangler the symbols' names go through.")
    var demangle = SymbolTools().demangler

    @Option(name: .customLong("without-ssr"), parsing: .next,
            help: ArgumentHelp("""
                Servers (comma-separated names) to build without server state regions: no `ssr`, \
                not restartable, and a heap 160 x ssr KiB larger, in which the same binaries keep \
                their clients' state instead. The baseline the benchmarks compare SSRs to.
                """, valueName: "name,..."))
    var withoutSSR: String?

    @Flag(name: .customLong("restart-without-ssr"), help: """
        With --without-ssr: the named servers stay restartable, so a fault restarts them from \
        the pristine image as MINIX 3's reincarnation server restarts a driver, with every \
        client's state gone. The baseline the fault campaigns compare SSRs to.
        """)
    var restartWithoutSSR = false

    func validate() throws {
        if restartWithoutSSR && withoutSSR == nil {
            throw ValidationError("--restart-without-ssr needs --without-ssr")
        }
    }

    func run() {
        build(systemPath: system, elfDirectory: elfDirectory, outputPath: output, list: list,
              tools: SymbolTools(nm: nm, demangler: demangle),
              withoutSSR: withoutSSR.map { $0.split(separator: ",").map(String.init) } ?? [],
              restartWithoutSSR: restartWithoutSSR)
    }
}

struct Symbolize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Name the code at an address of a program in a boot image, as a fault report does.")

    @Argument(help: "The boot image.")
    var image: String

    @Argument(help: "The program's name in the system description.")
    var program: String

    @Argument(help: "The address, decimal or 0x hex.")
    var address: String

    func validate() throws {
        guard parseAddress(address) != nil else { throw ValidationError("bad address '\(address)'") }
    }

    func run() { symbolize(imagePath: image, program: program, address: parseAddress(address)!) }
}
