/* The OpenAI CLIP BPE vocabulary (weights/bpe_simple_vocab_16e6.txt.gz, MIT), built into the
 * library so the tokenizer needs no file at run time. CLIPSKIP_VOCAB_GZ is set by CMake. */
    .section .rodata
    .global cs_vocab_gz
    .global cs_vocab_gz_end
    .balign 16
cs_vocab_gz:
    .incbin CLIPSKIP_VOCAB_GZ
cs_vocab_gz_end:
    .byte 0
    .section .note.GNU-stack,"",@progbits
