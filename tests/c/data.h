/* A small labelled question set (TREC-style coarse classes) shared by the C tests. */
#ifndef TANDEM_TEST_DATA_H
#define TANDEM_TEST_DATA_H

#include <stddef.h>

typedef struct {
  const char *text;
  const char *label;
} example;

static const example QUESTIONS[] = {
    {"Who wrote the novel Moby Dick ?", "HUM"},
    {"Who was the first president of the United States ?", "HUM"},
    {"Who invented the telephone ?", "HUM"},
    {"Who painted the Mona Lisa ?", "HUM"},
    {"Who discovered penicillin ?", "HUM"},
    {"Who is the lead singer of U2 ?", "HUM"},
    {"Who founded the Ford Motor Company ?", "HUM"},
    {"Who directed the film Jaws ?", "HUM"},
    {"Who composed the Moonlight Sonata ?", "HUM"},
    {"Who was Queen Victoria 's husband ?", "HUM"},
    {"Who played Rhett Butler in Gone with the Wind ?", "HUM"},
    {"Who wrote the Declaration of Independence ?", "HUM"},
    {"How many people live in Tokyo ?", "NUM"},
    {"How tall is the Eiffel Tower ?", "NUM"},
    {"How many legs does a spider have ?", "NUM"},
    {"What year did World War II end ?", "NUM"},
    {"How far is the Moon from the Earth ?", "NUM"},
    {"How much does an elephant weigh ?", "NUM"},
    {"How many states are in the USA ?", "NUM"},
    {"When was the Magna Carta signed ?", "NUM"},
    {"How old is the universe ?", "NUM"},
    {"How many calories are in an apple ?", "NUM"},
    {"What is the population of Canada ?", "NUM"},
    {"How long is the Nile river ?", "NUM"},
    {"Where is the Taj Mahal ?", "LOC"},
    {"What is the capital of Australia ?", "LOC"},
    {"Where is Mount Kilimanjaro located ?", "LOC"},
    {"In which country is the city of Timbuktu ?", "LOC"},
    {"Where did the Olympic Games originate ?", "LOC"},
    {"What is the largest desert in the world ?", "LOC"},
    {"Where is the Louvre museum ?", "LOC"},
    {"Which continent is Egypt in ?", "LOC"},
    {"Where can you find kangaroos in the wild ?", "LOC"},
    {"What river flows through Paris ?", "LOC"},
    {"Where is the headquarters of the United Nations ?", "LOC"},
    {"In what state is the Grand Canyon ?", "LOC"},
};

#define N_QUESTIONS (sizeof QUESTIONS / sizeof QUESTIONS[0])

#endif
