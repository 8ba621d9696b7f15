# Turns a file into a comma-separated list of bytes for an array initialiser (the chat page is embedded
# in the binary so `groak serve` needs no files beside it). Usage: cmake -DIN=file -DOUT=file.inc -P embed.cmake
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}.tmp" "// Generated from ${IN} by cmake/embed.cmake; do not edit.\n${bytes}\n")
file(RENAME "${OUT}.tmp" "${OUT}")
